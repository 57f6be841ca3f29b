import Testing

@testable import MeshConfig

@Test func smokeFixtures() throws {
    let result = ConfigLoader.load(files: [
        try sample("bookinfo/platform/kube/bookinfo.yaml"),
        try sample("bookinfo/networking/bookinfo-gateway.yaml"),
        try sample("bookinfo/networking/destination-rule-all.yaml"),
        try sample("tcp-echo/tcp-echo-all-v1.yaml"),
    ])
    for line in result.lines { print(line) }
}
