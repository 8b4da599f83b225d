import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { GraphiQLOptions } from 'graphql-yoga';

/** Where the page's assets are served; the hash in their path changes with their content. */
export const GRAPHIQL_ASSETS_PATH = '/graphiql/';

export interface GraphiQLAsset {
  contentType: string;
  body: Buffer;
  /** The same bytes gzip-compressed (the JavaScript bundle is ~5 MB, ~1.5 MB compressed). */
  gzipped: () => Promise<Buffer>;
}

interface Assets {
  version: string;
  files: Map<string, GraphiQLAsset>;
}

let assets: Promise<Assets> | undefined;

/**
 * GraphiQL without a CDN: yoga's own GraphiQL build (React, Monaco and its workers, CSS) comes from the
 * installed `@graphql-yoga/render-graphiql` package and is served by this instance under
 * `/graphiql/<hash>/`, cacheable forever because the hash names the content. graphql-ws's browser
 * build (the `graphql-ws` package, already a dependency) carries subscriptions, and graphiql-client.js
 * puts the header editor's Authorization into the socket's connectionParams.
 *
 * Loaded on first use: the bundle is ~9 MB of strings that an instance nobody opens GraphiQL on should
 * not hold.
 */
function loadAssets(): Promise<Assets> {
  assets ??= (async () => {
    const bundle = await import('@graphql-yoga/render-graphiql/graphiql');
    const require = createRequire(import.meta.url);
    // The browser build is not in graphql-ws's exports map; it sits beside dist/ in the package.
    const graphqlWs = await readFile(path.join(path.dirname(require.resolve('graphql-ws')), '../umd/graphql-ws.min.js'));
    const client = await readFile(new URL('./graphiql-client.js', import.meta.url));
    const favicon = /^data:[^;]+;base64,(.*)$/.exec(bundle.favicon)?.[1];
    const js = 'text/javascript; charset=utf-8';
    const contents: [string, string, string | Buffer][] = [
      ['yoga-graphiql.js', js, bundle.js],
      ['graphiql.css', 'text/css; charset=utf-8', bundle.css],
      ['editor.worker.js', js, bundle.editorWorkerService],
      ['json.worker.js', js, bundle.jsonWorker],
      ['graphql.worker.js', js, bundle.graphqlWorker],
      ['graphql-ws.js', js, graphqlWs],
      ['chronograph-graphiql.js', js, client],
      ['favicon.ico', 'image/x-icon', favicon ? Buffer.from(favicon, 'base64') : Buffer.alloc(0)],
    ];
    const hash = createHash('sha256');
    const files = new Map<string, GraphiQLAsset>();
    for (const [name, contentType, content] of contents) {
      const body = Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8');
      hash.update(name).update(body);
      let compressed: Promise<Buffer> | undefined;
      files.set(name, { contentType, body, gzipped: () => (compressed ??= promisify(gzip)(body)) });
    }
    return { version: hash.digest('hex').slice(0, 16), files };
  })();
  assets.catch(() => (assets = undefined));
  return assets;
}

/** The asset at `pathname` (under GRAPHIQL_ASSETS_PATH), or undefined when there is none. */
export async function graphiqlAsset(pathname: string): Promise<GraphiQLAsset | undefined> {
  const m = /^\/graphiql\/([0-9a-f]{16})\/([\w.-]+)$/.exec(pathname);
  if (!m) return undefined;
  const { version, files } = await loadAssets();
  return m[1] === version ? files.get(m[2]!) : undefined;
}

/** yoga's `renderGraphiQL`: the page; its options travel as JSON in a data block, never as markup. */
export async function renderGraphiQLPage(options: GraphiQLOptions): Promise<string> {
  const { version } = await loadAssets();
  const base = `${GRAPHIQL_ASSETS_PATH}${version}/`;
  const title = options.title ?? 'GraphiQL';
  const json = JSON.stringify({ endpoint: '/graphql', ...options }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${escapeHtml(title)}</title>
    <link rel="icon" href="${base}favicon.ico" />
    <link rel="stylesheet" href="${base}graphiql.css" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run GraphiQL.</noscript>
    <div id="root">Loading ${escapeHtml(title)}…</div>
    <script id="graphiql-options" type="application/json">${json}</script>
    <script src="${base}graphql-ws.js"></script>
    <script src="${base}yoga-graphiql.js"></script>
    <script src="${base}chronograph-graphiql.js"></script>
  </body>
</html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
