// CSS imports are bundled by esbuild into app.css; to TypeScript they are side-effect-only modules.
declare module '*.css';
