import { createServer, type RequestListener, type Server } from 'node:http';

/** One HTTP server for GraphQL over HTTP and SSE (graphql-yoga); port 0 picks a free port. */
export async function startHttpServer(handler: RequestListener, options: { host: string; port: number }): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : options.port };
}
