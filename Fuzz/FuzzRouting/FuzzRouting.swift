import CLibFuzzer
import MeshConfig
import NIOHTTP1
@testable import MeshCore

/// The route matchers on arbitrary input. Lines of the input:
///   0: a regex pattern, compiled with RE2 (any compile error is fine) and matched against line 1
///      and against the whole input as bytes;
///   1: a value, also an exact/prefix matcher (both cases) matched against line 2;
///   2: a method, 3: a request target (path?query), 4: a Host, then `name: value` header lines,
///      routed through a fixed table of exact, prefix, regex, header, query and authority matches.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    func line(_ index: Int) -> Substring { index < lines.count ? lines[index] : "" }

    if let regex = try? RE2Regex(String(line(0))) {
        _ = regex.matches(String(line(1)))
        _ = regex.matches(utf8: bytes)
    }
    for ignoreCase in [false, true] {
        for match in [StringMatch.exact(String(line(1))), .prefix(String(line(1)))] {
            _ = try? StringMatcher(match, ignoreCase: ignoreCase).matches(line(2))
        }
    }

    var headers = HTTPHeaders([("host", String(line(4)))])
    for header in lines.dropFirst(5) {
        // NIO's decoder hands the proxy only ASCII header names (HTTPHeaders traps on others).
        guard let colon = header.firstIndex(of: ":"), header[..<colon].utf8.allSatisfy({ $0 < 0x80 }) else { continue }
        headers.add(name: String(header[..<colon]), value: String(header[header.index(after: colon)...]))
    }
    let head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: String(line(2))), uri: String(line(3)), headers: headers)
    _ = routeTable.route(RouteRequest(head: head, port: 8080))
    return 0
}

/// A gateway on 8080 whose routes use every kind of match.
let routeTable: HTTPRouteTable = {
    let yaml = """
        apiVersion: v1
        kind: Service
        metadata: {name: reviews}
        spec:
          ports: [{port: 9080, name: http}]
          selector: {app: reviews}
        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 8080, name: http, protocol: HTTP}
            hosts: ["*"]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: by-host}
        spec:
          hosts: [reviews.example.com, "*.example.org"]
          gateways: [gw]
          http:
          - match:
            - uri: {regex: "/api/v[0-9]+/users/[^/]+"}
              ignoreUriCase: true
            - headers: {x-token: {regex: "(x+x+)+y"}}
            route: [{destination: {host: reviews}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: catch-all}
        spec:
          hosts: ["*"]
          gateways: [gw]
          http:
          - match:
            - headers:
                end-user: {exact: jason}
              uri: {prefix: /reviews}
              ignoreUriCase: true
            - queryParams: {v: {regex: "[0-9]{1,3}"}}
              method: {exact: POST}
            - authority: {regex: "([a-z]+\\\\.)*example\\\\.net(:[0-9]+)?"}
              withoutHeaders: {x-skip: {prefix: ""}}
            route: [{destination: {host: reviews}}]
          - match:
            - uri: {exact: /productpage}
            - uri: {regex: "/ratings/[0-9]+"}
            route: [{destination: {host: reviews}}]
        """
    let result = ConfigLoader.load(files: [ConfigFile(path: "conf/routes.yaml", contents: yaml)])
    guard let configuration = result.configuration else { fatalError("fixed route config: \(result.diagnostics)") }
    do {
        let snapshot = try SnapshotCompiler.compileGateway(configuration, generation: 1)
        guard let table = snapshot.listeners[8080]?.http else { fatalError("no HTTP listener on 8080") }
        return table
    } catch {
        fatalError("fixed route config: \(error)")
    }
}()

@_cdecl("FuzzRouting_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzOne)
}
