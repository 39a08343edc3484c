// `tapswitch` with the stand-in data plane (test/helpers/fake-worker.ts): exercises the CLI and the
// run/attach lifecycles (namespaces, TAP, gate, signals, exit codes) independently of the real
// data-plane worker. Used by the integration tests when TSW_TEST_STANDIN=1 or when the real worker is
// not built yet.
import * as path from 'node:path';
import { cli } from '../../src/cli/main';

cli(process.argv.slice(2), { workerFile: path.join(__dirname, 'fake-worker.js') });
