/// Sample workloads for the demo and the tests (Istio's tcp-echo and an httpbin-like service).
public enum SampleApps {
    /// Serves until the process ends: every line received is answered with `PREFIX LINE`.
    public static func runTCPEcho(host: String, port: Int, prefix: String) async throws {
        fatalError("not yet implemented")
    }

    /// Serves until the process ends: an httpbin-like HTTP/1.1 service.
    public static func runHTTP(host: String, port: Int, service: String, version: String) async throws {
        fatalError("not yet implemented")
    }
}
