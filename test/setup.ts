// Every test file runs on the backend chosen like the program chooses it (TENSOR_BACKEND overrides).
import { initBackend } from '../src/backend/index.js';

await initBackend((process.env.TENSOR_BACKEND as 'auto' | undefined) ?? 'auto');
