// Public surface of @tiergate/ipvs: the kernel-facing IPVS model, the pure netlink codec, and the drivers.
export * from './address.ts';
export * from './driver.ts';
export * from './errors.ts';
export * from './ipvsadm/ipvsadm-args.ts';
export * from './ipvsadm/ipvsadm-parse.ts';
export * from './ipvsadm-driver.ts';
export * from './model.ts';
export * from './netlink/attributes.ts';
export * from './netlink/constants.ts';
export * from './netlink/ipvs-decode.ts';
export * from './netlink/ipvs-encode.ts';
export * from './netlink/message.ts';
export * from './netlink/writer.ts';
export * from './netlink-driver.ts';
export * from './netlink-socket.ts';
export * from './ops.ts';
export * from './registry.ts';
