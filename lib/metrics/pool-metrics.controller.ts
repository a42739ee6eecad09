import { Controller, Get, Inject, Res, type Type } from '@nestjs/common';
import { PoolMetricsService } from './pool-metrics.service.js';

/** The response methods the scrape needs; Express's and Fastify's responses both have `header`. */
interface HeaderSetter {
  header(name: string, value: string): unknown;
}

/** A controller serving GET /<path> with the registry's exposition text (the route is chosen in `forRoot`). */
export function createPoolMetricsController(path: string): Type<unknown> {
  @Controller(path)
  class PoolMetricsController {
    constructor(@Inject(PoolMetricsService) private readonly metrics: PoolMetricsService) {}

    @Get()
    async scrape(@Res({ passthrough: true }) response: HeaderSetter): Promise<string> {
      const { contentType, body } = await this.metrics.scrape();
      response.header('Content-Type', contentType);
      return body;
    }
  }
  return PoolMetricsController;
}
