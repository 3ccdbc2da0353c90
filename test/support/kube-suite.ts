// One real kube-apiserver for the enclosing describe block: started before its tests, stopped after.
import { afterAll, beforeAll } from 'vitest';
import { startKubeApiServer, type KubeApiServer, type KubeApiServerOptions } from './kube-apiserver.js';

/** Register the start and stop hooks; the getter returns the running server inside the tests. */
export function kubeApiServerForSuite(opts: KubeApiServerOptions = {}): () => KubeApiServer {
  let kube: KubeApiServer | undefined;
  beforeAll(async () => {
    kube = await startKubeApiServer(opts);
  });
  afterAll(async () => {
    await kube?.stop();
  });
  return () => {
    if (!kube) throw new Error('the kube-apiserver of this suite did not start');
    return kube;
  };
}
