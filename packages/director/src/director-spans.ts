import { type Link, ROOT_CONTEXT, type Span, type SpanContext, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { HealthChange } from '@tiergate/health';

// A proxy tracer: a no-op until the process registers an SDK (docs/telemetry.md), then real spans.
const tracer = trace.getTracer('@tiergate/director');

/**
 * Most health transitions one reconcile span links to. Links are kept until the next cycle starts;
 * a flapping pool between two cycles must not grow a span (and its export) without bound.
 */
export const MAX_TRANSITION_LINKS = 32;

/** What one reconcile cycle did, as its span reports it. */
export interface CycleOutcome {
  /** Ops the plan asked for. */
  readonly planned: number;
  /** Ops done (including tolerated ones; on a partial failure, those done before it). */
  readonly applied: number;
  /** Ops the kernel answered with "already so". */
  readonly tolerated: number;
  /** The failure's TG_* code (or `unknown`), when the cycle failed. */
  readonly error: { readonly code: string; readonly message: string } | null;
}

/** How a cycle ended: nothing to do, changes applied, or failed (retried next cycle). */
export type CycleResultName = 'unchanged' | 'applied' | 'failed';

/**
 * Starts the INTERNAL span `director reconcile` of one cycle. It is always a root span (a cycle is
 * caused by the timer or by health, never by a request) and links to the health transitions that
 * asked for it. Make it the active span while the cycle runs so log lines carry its trace id.
 */
export function startReconcileSpan(director: string, causes: readonly SpanContext[]): Span {
  const links: Link[] = causes.map((context) => ({ context }));
  return tracer.startSpan(
    'director reconcile',
    { kind: SpanKind.INTERNAL, root: true, links, attributes: { 'tiergate.director.name': director } },
    ROOT_CONTEXT,
  );
}

/** Records the outcome on the span of startReconcileSpan and ends it. */
export function endReconcileSpan(span: Span, outcome: CycleOutcome): void {
  const result: CycleResultName = outcome.error ? 'failed' : outcome.planned === 0 ? 'unchanged' : 'applied';
  span.setAttributes({
    'tiergate.reconcile.ops_planned': outcome.planned,
    'tiergate.reconcile.ops_applied': outcome.applied,
    'tiergate.reconcile.ops_tolerated': outcome.tolerated,
    'tiergate.reconcile.result': result,
  });
  if (outcome.error) {
    span.setAttribute('error.type', outcome.error.code);
    span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error.message });
  }
  span.end();
}

/**
 * Records one real server's health transition as a short root INTERNAL span `director health
 * transition` (ended at once: the transition is an instant, the check that completed it is in the
 * attributes) and returns it, for the caller to log inside and to link from the next reconcile span.
 */
export function healthTransitionSpan(director: string, server: string, change: HealthChange): Span {
  const span = tracer.startSpan(
    'director health transition',
    {
      kind: SpanKind.INTERNAL,
      root: true,
      attributes: {
        'tiergate.director.name': director,
        'tiergate.virtual_service': change.monitor,
        'tiergate.real_server': server,
        'tiergate.health.state': change.healthy ? 'up' : 'down',
        'tiergate.health.detail': change.result.detail,
      },
    },
    ROOT_CONTEXT,
  );
  span.end();
  return span;
}
