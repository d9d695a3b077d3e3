/**
 * SIGHUP reloads the proxy once it serves (`onReload` gives the reload); before that it is ignored, and `early` is
 * told. Installed first thing: a process with no SIGHUP handler is killed by one (the default action), and an
 * execve resets the handlers of the image before it.
 */
export function hupReloads(early: () => void): { onReload: (fn: () => void) => void; dispose: () => void } {
  let reload: (() => void) | undefined;
  const onHup = () => (reload ? reload() : early());
  process.on('SIGHUP', onHup);
  return {
    onReload: (fn) => {
      reload = fn;
    },
    dispose: () => process.off('SIGHUP', onHup),
  };
}
