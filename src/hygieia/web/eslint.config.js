// ESLint for the browser client's sources (`make lint`): the recommended rules plus a
// few that keep the code plain. Layout is Prettier's job (.prettierrc.json). Only our
// sources are linted, never node_modules or the esbuild output in static/app.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['node_modules/', 'static/'] },
  js.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: globals.browser,
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A body that Prettier wraps onto its own line gets braces.
      curly: ['error', 'multi-line'],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-console': 'error',
      'no-implicit-coercion': 'error',
      'no-return-assign': 'error',
      'no-shadow': 'error',
      'no-throw-literal': 'error',
      'no-var': 'error',
      'object-shorthand': 'error',
      'prefer-const': 'error',
      'prefer-promise-reject-errors': 'error',
      'prefer-template': 'error',
    },
  },
];
