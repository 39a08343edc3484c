// Zero-copy views over frame bytes and the arithmetic that goes with them. Imports nothing.
export * from './bytes';
export * from './addr';
export * from './checksum';
export * from './seq';
export * from './vnet';
export * from './ethernet';
export * from './arp';
export * from './ipv4';
export * from './icmp';
export * from './udp';
export * from './tcp';
export * from './frame';
export * from './ipv6';
export * from './ipv6-addr';
export * from './icmpv6';
