// TunnelModule: the tunnel's Nest face (re-exported by lib/nest/index.ts).
export { TunnelModule } from './tunnel.module.js';
export { TunnelServerService } from './tunnel-server.service.js';
export { TunnelClientService } from './tunnel-client.service.js';
export { TUNNEL_SERVER, TUNNEL_CLIENT, getTunnelServerToken, getTunnelClientToken } from './tunnel.constants.js';
export { InjectTunnelServer, InjectTunnelClient } from './tunnel.decorators.js';
export type {
  TunnelModuleOptions,
  TunnelModuleRootOptions,
  TunnelModuleAsyncOptions,
  TunnelOptionsFactory,
  TunnelModuleServerOptions,
  TunnelModuleClientOptions,
} from './tunnel-module-options.interface.js';
export type { TunnelServerEvent, TunnelClientEvent } from './tunnel-events.js';
