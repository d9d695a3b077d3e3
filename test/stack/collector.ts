// The `collector` host of the deployed-stack drills (test/stack-vm.test.ts): tiergate's test OTLP/HTTP receiver on
// ADDRESS:4318, standing in for Jaeger (no Jaeger binary exists here). Writes DIR/collector.ready once it listens; on
// SIGTERM it writes every span received to DIR/spans.json and exits. Arguments: ADDRESS DIR.
import { writeFileSync } from 'node:fs';
import { startOtlpReceiver } from '../../packages/testkit/src/otlp/receiver.ts';

const [host, dir] = process.argv.slice(2) as [string, string];
const receiver = await startOtlpReceiver({ host, port: 4318 });
writeFileSync(`${dir}/collector.ready`, receiver.url);
process.on('SIGTERM', () => {
  writeFileSync(`${dir}/spans.json`, JSON.stringify(receiver.spans()));
  process.exit(0);
});
