import { NetHost } from '../net/harness.ts';
const h = await NetHost.boot({ memoryMiB: 256 });
for (let i = 0; i < 3; i++) {
  const f = await h.ask({ kind: 'floor-run', bridge: 'xenbr0', workload: 'udp-stream', size: 1472, count: 60000 }, 'floor-reply');
  console.log(JSON.stringify(f));
}
await h.close();
