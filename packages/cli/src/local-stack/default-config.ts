import { fileURLToPath } from 'node:url';

/** The quick-start topology `npm start` runs (its own module: `tiergate up --help` shows it without loading the stack). */
export const DEFAULT_STACK_CONFIG = fileURLToPath(new URL('../../../../examples/local-stack.yaml', import.meta.url));
