/** vitest global setup: one PostgreSQL server for the whole run, its URL handed to every test file. */
import type { TestProject } from 'vitest/node';
import { startTestServer } from './postgres-server.ts';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startTestServer();
  project.provide('pgAdminUrl', server.adminUrl);
  return async () => {
    await server.stop();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}
