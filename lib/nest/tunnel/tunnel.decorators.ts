import { Inject } from '@nestjs/common';
import { getTunnelClientToken, getTunnelServerToken } from './tunnel.constants.js';

/** Injects the `TunnelServerService` of tunnel `name` (the default tunnel when omitted). */
export const InjectTunnelServer = (name?: string): PropertyDecorator & ParameterDecorator => Inject(getTunnelServerToken(name));

/** Injects the `TunnelClientService` of tunnel `name` (the default tunnel when omitted). */
export const InjectTunnelClient = (name?: string): PropertyDecorator & ParameterDecorator => Inject(getTunnelClientToken(name));
