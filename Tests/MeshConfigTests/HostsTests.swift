import Testing

import MeshConfig

@Suite struct HostsTests {
    @Test func shortNamesResolveInTheNamespaceOfTheResource() {
        #expect(resolveHost("reviews", namespace: "default") == "reviews.default.svc.cluster.local")
        #expect(resolveHost("reviews", namespace: "bookinfo") == "reviews.bookinfo.svc.cluster.local")
        #expect(resolveHost("reviews.bookinfo", namespace: "default") == "reviews.bookinfo")
        #expect(resolveHost("httpbin.org", namespace: "default") == "httpbin.org")
        #expect(resolveHost("*", namespace: "default") == "*")
        #expect(resolveHost("*.example.com", namespace: "default") == "*.example.com")
    }

    @Test func hostMatching() {
        #expect(hostMatches(pattern: "reviews.default.svc.cluster.local", host: "Reviews.Default.svc.cluster.local"))
        #expect(hostMatches(pattern: "*", host: "anything.example.com"))
        #expect(hostMatches(pattern: "*.example.com", host: "a.example.com"))
        #expect(hostMatches(pattern: "*.example.com", host: "a.b.example.com"))
        #expect(hostMatches(pattern: "*.EXAMPLE.com", host: "a.example.COM"))
        #expect(!hostMatches(pattern: "*.example.com", host: "example.com"))
        #expect(!hostMatches(pattern: "*.example.com", host: "a.example.org"))
        #expect(!hostMatches(pattern: "a.example.com", host: "b.example.com"))
        #expect(hostMatches(pattern: "*.example.com", host: "*.a.example.com"))
        #expect(!hostMatches(pattern: "*.a.example.com", host: "*.example.com"))
    }

    @Test func hostOverlap() {
        #expect(hostsOverlap("*.example.com", "shop.example.com"))
        #expect(hostsOverlap("shop.example.com", "*.example.com"))
        #expect(hostsOverlap("*", "x"))
        #expect(hostsOverlap("*.a.com", "*.b.a.com"))
        #expect(!hostsOverlap("a.com", "b.com"))
    }
}
