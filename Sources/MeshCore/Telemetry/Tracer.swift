import Atomics
import MeshConfig
import NIOConcurrencyHelpers
import NIOHTTP1

/// Distributed tracing: B3 (multi-header and single `b3`) and W3C `traceparent` propagation,
/// sampling, spans as Zipkin v2 JSON to a collector through a bounded queue.
///
/// On the data path, ``begin(requestHeaders:upstreamHeaders:sampling:)`` reads the client's trace
/// headers in one pass, decides, and writes the upstream's (no lock: the configuration is one
/// atomic load); ``end(_:record:)`` appends a sampled span to a bounded queue (a lock held for the
/// append only). One background thread turns queued spans into JSON and POSTs them to
/// `http://<zipkin>/api/v2/spans` in batches (up to ``batchSize`` spans, or what came within
/// ``flushInterval`` seconds of the first), each POST bounded by ``sendTimeout``. A full queue or a
/// failed POST drops spans and counts them; an unreachable or slow collector logs one warning per
/// failure episode and never slows traffic.
public final class Tracer: Sendable {
    public static let defaultCapacity = 10_000
    public static let batchSize = 100
    public static let flushInterval = 1.0
    public static let sendTimeout = 5.0

    /// A span in progress, from ``begin(requestHeaders:upstreamHeaders:sampling:)`` to ``end(_:record:)``.
    /// A class: a sampled request carries one reference, and an exchange that is not traced pays
    /// nothing for the fields (keeping the exchange object within the allocator's fast size classes).
    public final class Span: Sendable {
        public let context: TraceContext
        /// `x-forwarded-proto` of the request, for `http.url`.
        let scheme: String
        /// `x-envoy-downstream-service-cluster`, for `downstream_cluster`.
        let downstreamCluster: String?
        /// Custom tags from request headers, resolved at the start.
        let headerTags: [(tag: String, value: String)]
        /// The configuration the span started with.
        let configuration: TracerConfiguration

        init(
            context: TraceContext, scheme: String, downstreamCluster: String?, headerTags: [(tag: String, value: String)],
            configuration: TracerConfiguration
        ) {
            self.context = context
            self.scheme = scheme
            self.downstreamCluster = downstreamCluster
            self.headerTags = headerTags
            self.configuration = configuration
        }
    }

    private struct Pending: Sendable {
        var span: Span
        var record: HTTPExchangeRecord
    }

    private let state: ManagedAtomic<TracerConfigurationBox>
    private let queue: BoundedDrainQueue<Pending>
    private let counters = NIOLockedValueBox(Counters())
    private let worker: BackgroundWorker

    private struct Counters {
        var reported = 0
        var failedPosts = 0
    }

    /// Starts with no collector (headers propagate; nothing is reported) until ``configure(_:)``.
    public init(log: MeshLog, capacity: Int = Tracer.defaultCapacity, sendTimeout: Double = Tracer.sendTimeout) {
        let state = ManagedAtomic(TracerConfigurationBox(TracerConfiguration(zipkinAddress: nil, serviceName: "istio-ingressgateway.istio-system")))
        let queue = BoundedDrainQueue<Pending>(capacity: capacity)
        let counters = self.counters
        self.state = state
        self.queue = queue
        self.worker = BackgroundWorker(label: "meshgate.zipkin") {
            var episode = DropEpisode(what: "zipkin reporter", unit: "spans", log: log)
            while let batch = queue.nextBatch(batchSize: Self.batchSize, fillWait: Self.flushInterval) {
                guard !batch.isEmpty else { continue }
                var failure: String?
                if let address = state.load(ordering: .acquiring).configuration.zipkinAddress {
                    let body = ZipkinSpan.json(batch.map { $0.span.configuration.span($0.span, record: $0.record) })
                    switch ZipkinSender.post(body, to: address, timeoutSeconds: sendTimeout) {
                    case .success:
                        counters.withLockedValue { $0.reported += batch.count }
                    case .failure(let error):
                        failure = "cannot report \(batch.count) spans to \(address): \(error)"
                        counters.withLockedValue { $0.failedPosts += 1 }
                        queue.countDropped(batch.count)
                    }
                } else {
                    queue.countDropped(batch.count)  // the collector was removed by a reload
                }
                episode.update(dropped: queue.dropped, failure: failure)
            }
        }
    }

    /// Replaces the configuration (on start and on every reload); spans already begun keep theirs.
    public func configure(_ configuration: TracerConfiguration) {
        self.state.store(TracerConfigurationBox(configuration), ordering: .releasing)
    }

    /// The same from `meshgate.yaml` and the effective telemetry (collector, span reporting, custom tags).
    public func configure(settings: MeshSettings, telemetry: EffectiveTelemetry) {
        self.configure(TracerConfiguration(settings: settings, telemetry: telemetry))
    }

    public var configuration: TracerConfiguration { self.state.load(ordering: .acquiring).configuration }

    /// At the start of an exchange: join or start a trace, decide sampling (the client's decision,
    /// else `sampling` percent), and write the propagation headers into `upstreamHeaders` (which
    /// may hold a copy of the client's; they are replaced). Returns nil when nothing is to be
    /// reported (not sampled, no collector, or span reporting disabled); the headers propagate anyway.
    public func begin(requestHeaders: HTTPHeaders, upstreamHeaders: inout HTTPHeaders, sampling: Double) -> Span? {
        let incoming = TracePropagation.extract(requestHeaders)
        let random = FastRandom.shared
        let context = TracePropagation.start(incoming, samplingPercentage: sampling, random: { random.next() })
        TracePropagation.inject(context, singleB3: incoming.sentSingleB3, replacing: incoming.sawTraceHeaders, into: &upstreamHeaders)
        let configuration = self.state.load(ordering: .acquiring).configuration
        guard context.sampled, configuration.reportsSpans else { return nil }
        return Span(
            context: context,
            scheme: upstreamHeaders.first(name: "x-forwarded-proto") ?? requestHeaders.first(name: "x-forwarded-proto") ?? "http",
            downstreamCluster: requestHeaders.first(name: "x-envoy-downstream-service-cluster"),
            headerTags: configuration.headerTags.compactMap { tag in
                (requestHeaders.first(name: tag.header) ?? tag.defaultValue).map { (tag.tag, $0) }
            },
            configuration: configuration
        )
    }

    /// At the end of an exchange: report the span (never blocks; a full queue drops and counts).
    public func end(_ span: Span, record: HTTPExchangeRecord) {
        self.queue.append(Pending(span: span, record: record))
    }

    /// Spans dropped so far: queue full, a failed POST, or no collector any more.
    public var droppedSpans: Int { self.queue.dropped }

    /// Spans the collector accepted.
    public var reportedSpans: Int { self.counters.withLockedValue { $0.reported } }

    /// POSTs that failed (unreachable, timed out, or a non-2xx answer).
    public var failedReports: Int { self.counters.withLockedValue { $0.failedPosts } }

    /// Sends what is queued (one last batch), then stops the reporter; waits at most `timeoutSeconds`.
    public func shutdown(timeoutSeconds: Double = Tracer.sendTimeout + 1) {
        self.queue.close()
        self.worker.join(timeoutSeconds: timeoutSeconds)
    }
}

/// The atomic box around the current ``TracerConfiguration``.
final class TracerConfigurationBox: AtomicReference, Sendable {
    let configuration: TracerConfiguration

    init(_ configuration: TracerConfiguration) {
        self.configuration = configuration
    }
}
