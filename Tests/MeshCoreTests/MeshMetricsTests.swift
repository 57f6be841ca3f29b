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

    @Test func anInboundSourceReplacesThisProxysSourceLabels() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let metrics = MeshMetrics(group: group, sourceLabels: PrometheusText.labels([("reporter", "source"), ("source_workload", "me")]))
        let shard = metrics.shard(for: loop)
        let peer = PeerMetadata(namespace: "istio-system", workloadName: "istio-ingressgateway", labels: ["app": "gw"], clusterID: "Kubernetes")
        let caller = SourceIdentity(peer: peer, principal: "spiffe://cluster.local/ns/istio-system/sa/gw")
        let destination = self.identity("v1")
        try await loop.submit {
            for source in [caller, SourceIdentity(peer: nil, principal: nil), nil] {
                var record = HTTPExchangeRecord()
                record.responseCode = 200
                record.destination = destination
                record.source = source
                shard.recordHTTP(record)
            }
        }.get()
        let lines = await metrics.prometheusText().split(separator: "\n").filter { $0.hasPrefix("istio_requests_total{") }
        #expect(lines.count == 3)
        #expect(lines.contains { $0.hasPrefix(
            "istio_requests_total{reporter=\"destination\",source_workload=\"istio-ingressgateway\",source_workload_namespace=\"istio-system\",source_principal=\"spiffe://cluster.local/ns/istio-system/sa/gw\",source_app=\"gw\",source_version=\"unknown\",source_canonical_service=\"gw\",source_canonical_revision=\"latest\",source_cluster=\"Kubernetes\",destination_workload=\"reviews-v1\""
        ) && $0.contains("connection_security_policy=\"mutual_tls\"") })
        #expect(lines.contains { $0.contains("reporter=\"destination\",source_workload=\"unknown\"") && $0.contains("connection_security_policy=\"none\"") })
        #expect(lines.contains { $0.hasPrefix("istio_requests_total{reporter=\"source\",source_workload=\"me\"") && $0.contains("connection_security_policy=\"unknown\"") })
    }
}
