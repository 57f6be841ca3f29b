import Testing

@testable import MeshCA

@Suite struct SPIFFEIDTests {
    @Test func formatsIstioIdentityAndPrincipal() throws {
        let id = try SPIFFEID(namespace: "default", serviceAccount: "reviews")
        #expect(id.uri == "spiffe://cluster.local/ns/default/sa/reviews")
        #expect(id.principal == "cluster.local/ns/default/sa/reviews")
        #expect("\(id)" == id.uri)
        let other = try SPIFFEID(trustDomain: "prod.example.com", namespace: "istio-system", serviceAccount: "istio-ingressgateway-service-account")
        #expect(other.uri == "spiffe://prod.example.com/ns/istio-system/sa/istio-ingressgateway-service-account")
    }

    @Test func parsesWhatItFormats() throws {
        let parts = try #require(SPIFFEID.parse("spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings-v2"))
        #expect(parts.trustDomain == "cluster.local")
        #expect(parts.namespace == "bookinfo")
        #expect(parts.serviceAccount == "bookinfo-ratings-v2")
        let id = try SPIFFEID(namespace: "a1", serviceAccount: "b-2")
        #expect(SPIFFEID(uri: id.uri) == id)
    }

    @Test(arguments: [
        "", "spiffe://", "http://cluster.local/ns/default/sa/reviews", "SPIFFE://cluster.local/ns/default/sa/reviews",
        "spiffe://cluster.local/ns/default/sa/", "spiffe://cluster.local/ns//sa/reviews",
        "spiffe://cluster.local/ns/default/sa/reviews/", "spiffe://cluster.local/ns/default/sa/reviews/extra",
        "spiffe://cluster.local/sa/reviews/ns/default", "spiffe://cluster.local:443/ns/default/sa/reviews",
        "spiffe://user@cluster.local/ns/default/sa/reviews", "spiffe://cluster.local/ns/default/sa/reviews?x=1",
        "spiffe://cluster.local/ns/default/sa/Reviews", "spiffe://cluster.local/ns/default/sa/bad_sa",
        "spiffe://cluster.local/ns/-default/sa/reviews", "spiffe:///ns/default/sa/reviews",
        "spiffe://cluster..local/ns/default/sa/reviews", "spiffe://cluster.local/ns/dëfault/sa/reviews",
    ])
    func refusesOtherShapes(_ text: String) {
        #expect(SPIFFEID.parse(text) == nil)
        #expect(SPIFFEID(uri: text) == nil)
    }

    @Test func illegalPartsNameTheirField() {
        let cases: [(trustDomain: String, namespace: String, serviceAccount: String, expected: String)] = [
            ("cluster.local", "default", "Bad_SA!", "service account 'Bad_SA!': illegal characters 'B', '_', 'S', 'A', '!'; use lower-case letters, digits and '-'"),
            ("cluster.local", "default", "bad_sa", "service account 'bad_sa': illegal character '_'"),
            ("cluster.local", "", "reviews", "namespace '': must not be empty"),
            ("cluster.local", "my/ns", "reviews", "namespace 'my/ns': illegal character '/'"),
            ("cluster.local", "-ns", "reviews", "namespace '-ns': must start and end with a letter or digit"),
            ("cluster.local", String(repeating: "a", count: 64), "reviews", "must be at most 63 characters"),
            ("Cluster.Local", "default", "reviews", "trust domain 'Cluster.Local': label 'Cluster' illegal character 'C'"),
            ("cluster..local", "default", "reviews", "trust domain 'cluster..local': empty label"),
            ("", "default", "reviews", "trust domain '': must not be empty"),
        ]
        for item in cases {
            #expect {
                try SPIFFEID(trustDomain: item.trustDomain, namespace: item.namespace, serviceAccount: item.serviceAccount)
            } throws: { error in
                let error = error as! MeshCAError
                return error.code == .invalidIdentity && error.message.contains(item.expected)
            }
        }
        let longest = String(repeating: "a", count: 63)
        #expect(throws: Never.self) { try SPIFFEID(namespace: longest, serviceAccount: "x") }
    }
}
