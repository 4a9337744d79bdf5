// ESLint flat config: @eslint/js and typescript-eslint recommended (syntactic, fast), with
// the few rules that are noise here relaxed. `npm run lint` runs it over the whole tree.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  globalIgnores(['dist/', 'node_modules/', 'coverage/', '.tap/', 'bench/results/', 'bench/.build/', 'data/', 'test-artifacts/', '.scratch*/']),
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      globals: {
        console: 'readonly',
        process: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        URLSearchParams: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        queueMicrotask: 'readonly',
        structuredClone: 'readonly',
        fetch: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        globalThis: 'readonly',
        performance: 'readonly',
      },
    },
    rules: {
      // `_`-prefixed names mark deliberately unused parameters and bindings.
      // Input validation here deliberately matches control characters (CR/LF/NUL injection).
      'no-control-regex': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
    },
  },
  {
    // Type-aware checks are left to `tsc --noEmit`; undefined names in TS are its job too.
    files: ['**/*.ts'],
    rules: { 'no-undef': 'off' },
  },
);
