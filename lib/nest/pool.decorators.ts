import { Inject } from '@nestjs/common';
import { getClientPoolToken, getServerPoolToken } from './pool.constants.js';

/** Injects the `ClientPoolService` of pool `name` (the default pool when omitted). */
export const InjectClientPool = (name?: string): PropertyDecorator & ParameterDecorator => Inject(getClientPoolToken(name));

/** Injects the `ServerPoolService` of pool `name` (the default pool when omitted). */
export const InjectServerPool = (name?: string): PropertyDecorator & ParameterDecorator => Inject(getServerPoolToken(name));
