// Public surface of @tiergate/proxy.
export { ATTEMPT_CHANNEL, type AttemptEvent, REQUEST_CHANNEL, type RequestEvent } from './channels.ts';
export { realClientAddress, unmapIPv4 } from './client-address.ts';
export {
  type BoundAddress,
  type ProxyLogger,
  type ProxySection,
  type ProxyServer,
  type ProxyStatus,
  type StartProxyOptions,
  startProxy,
} from './proxy-server.ts';
export { RouteTable, stripPort } from './route-table.ts';
