export { LibvirtClient, type ConnectOptions, type LibvirtClientEvents, type DomainRef, type DomainState, type KeepaliveStats } from './client.js';
export { LibvirtError, LibvirtConnectionError, LibvirtTimeoutError, ErrorCode, ErrorDomain, ErrorLevel, VIR_ERR_NO_DOMAIN, VIR_ERR_OPERATION_INVALID } from './errors.js';
export { LIFECYCLE_EVENTS, LIFECYCLE_DETAILS, DOMAIN_STATES, formatVersion, parseUuid, type Domain, type DomainInfo, type DomainStateName, type LifecycleEvent, type LifecycleEventName } from './protocol.js';
export { DEFAULT_URI, SYSTEM_SOCKET, pickUri, resolveUri } from './uri.js';
