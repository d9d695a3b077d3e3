// Runs a proxy in its own process (so the streaming test measures the proxy's RSS, not the test's).
// argv[2]: the proxy section as JSON (already validated by the parent). Reports its port, then RSS on request.
import { startProxy } from '../src/index.ts';

const proxy = await startProxy(JSON.parse(process.argv[2]!));
process.send!({ port: proxy.addresses()[0]!.port });
process.on('message', async (m: string) => {
  if (m === 'rss') process.send!({ rss: process.memoryUsage().rss });
  if (m === 'close') {
    await proxy.close();
    process.exit(0);
  }
});
