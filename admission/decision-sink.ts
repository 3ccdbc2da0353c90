// Default decision sink: one structured log line per decision (pino). When the engine's decision-log
// shipper is wired in (proxy-plugin's DecisionLog has the same `record` method), pass that instead.
import { pino, type Logger } from 'pino';
import type { DecisionEvent } from '../formats/decision-event.js';
import type { DecisionSink } from './decide.js';

/** Log each decision as `{msg: "decision", event}`. */
export function pinoSink(logger: Logger = pino({ name: 'warden-admission' })): DecisionSink {
  return { record: (event: DecisionEvent) => logger.info({ event }, 'decision') };
}

/** Keep decisions in memory (tests, benchmarks, `audit`). */
export function memorySink(): DecisionSink & { events: DecisionEvent[] } {
  const events: DecisionEvent[] = [];
  return { events, record: (e) => void events.push(e) };
}
