// Every test file runs on the backend chosen like the program chooses it: native-cpu when the addon is built,
// else stock cpu (TENSOR_BACKEND overrides, e.g. TENSOR_BACKEND=cpu).
import { initBackend, parseBackendFlag } from '../src/backend/index.js';

await initBackend(parseBackendFlag([], process.env));
