import MeshConfig
import NIOCore
import NIOPosix
import Testing

@testable import MeshCore

@Suite struct MeshMetricsTests {
    private func identity(_ version: String) -> DestinationIdentity {
        DestinationIdentity(
            workload: "reviews-\(version)", workloadNamespace: "default", principal: "unknown", app: "reviews", version: version,
            service: "reviews.default.svc.cluster.local", serviceName: "reviews", serviceNamespace: "default",
            canonicalService: "reviews", canonicalRevision: version
        )
    }

    @Test func labelTextRoundTripsThroughTheParserWithEscapes() {
        let text = PrometheusText.labels([("a", "x"), ("b", "say \"hi\"\\n"), ("c", "")])
        #expect(PrometheusText.parseLabels(text).map { "\($0.0)=\($0.1)" } == ["a=x", "b=say \"hi\"\\n", "c="])
    }

    @Test func overridesRemoveAndUpsertTagsAndMergeSeriesThatBecomeEqual() async throws {
        // A real loop: a scrape asks each loop for its shard on that loop.
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let metrics = MeshMetrics(group: group, sourceLabels: PrometheusText.labels([("reporter", "source")]))
        let shard = metrics.shard(for: loop)
        let destinations = ["v1", "v2"].map(self.identity)
        try await loop.submit {
            for destination in destinations {
                var record = HTTPExchangeRecord()
                record.responseCode = 200
                record.destination = destination
                shard.recordHTTP(record)
            }
        }.get()
        let plain = await metrics.prometheusText()
        #expect(plain.split(separator: "\n").filter { $0.hasPrefix("istio_requests_total{") }.count == 2)

        let custom = MetricCustomization(removedTags: ["destination_version", "destination_workload", "destination_canonical_revision"], upsertedTags: ["team": "books"])
        let merged = await metrics.prometheusText(overrides: ["istio_requests_total": custom, "istio_request_bytes": MetricCustomization(disabled: true)])
        let lines = merged.split(separator: "\n").filter { $0.hasPrefix("istio_requests_total{") }
        #expect(lines.count == 1)
        #expect(lines.first?.hasSuffix(",team=\"books\"} 2") == true)
        #expect(!lines.first!.contains("destination_version"))
        #expect(!merged.contains("istio_request_bytes"))
        #expect(merged.contains("istio_response_bytes_count{"))
    }
}
