import CLibFuzzer
import MeshConfig
import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import MeshCore

/// The HTTP/1 paths on arbitrary bytes. The first byte picks the path and how the rest is cut into
/// reads; the rest is the stream.
///   0 mod 4: a client's bytes into the real downstream pipeline (NIO's decoder, the proxy handler)
///         on an EmbeddedChannel, routing on a fixed config; every upstream connect fails at once
///         (503 UF), so the local replies, keep-alive, pipelining and close paths all run without
///         sockets. Each decoded request head also goes through the upstream header rewrite.
///   2 mod 4: the same, but each upstream connect gets an in-memory upstream (the real upstream
///         pipeline on an EmbeddedChannel): after two length bytes (big-endian) come the client's
///         bytes, then the upstream's, fed to the upstream in slices as the client's requests go out.
///   odd:  an upstream's bytes into NIO's client pipeline (after a GET), each response head through
///         the downstream header rewrite.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    guard let first = input.first else { return 0 }
    let stream = Array(input.dropFirst())
    let chunk = Int(first >> 1) + 1
    if first & 3 == 0 {
        downstream(stream, upstreamBytes: nil, chunk: chunk)
        requestHeaders(stream, chunk: chunk)
    } else if first & 3 == 2 {
        guard stream.count >= 2 else { return 0 }
        let split = min(Int(stream[0]) << 8 | Int(stream[1]), stream.count - 2) + 2
        downstream(Array(stream[2..<split]), upstreamBytes: Array(stream[split...]), chunk: chunk)
    } else {
        responseHeaders(stream, chunk: chunk)
    }
    return 0
}

private func chunks(_ bytes: [UInt8], _ size: Int) -> [ByteBuffer] {
    stride(from: 0, to: bytes.count, by: size).map { ByteBuffer(bytes: bytes[$0..<min($0 + size, bytes.count)]) }
}

/// The in-memory upstream connections a connector made, in order.
private final class Upstreams: @unchecked Sendable {
    var channels: [EmbeddedChannel] = []
}

private func downstream(_ bytes: [UInt8], upstreamBytes: [UInt8]?, chunk: Int) {
    let channel = EmbeddedChannel()
    let upstreams = Upstreams()
    let loop = channel.embeddedEventLoop
    let connector: HTTPConnectionPools.Connector
    if upstreamBytes == nil {
        connector = { eventLoop, _, _, _ in eventLoop.makeFailedFuture(ChannelError.connectPending) }
    } else {
        connector = { eventLoop, key, _, _ in
            let upstream = EmbeddedChannel(loop: loop)
            do {
                try LoopPool.configureUpstream(upstream, key: key)
                try upstream.connect(to: SocketAddress(ipAddress: "127.0.9.1", port: 9080)).wait()
                upstreams.channels.append(upstream)
                return eventLoop.makeSucceededFuture(try upstream.pipeline.syncOperations.handler(type: UpstreamHTTPHandler.self))
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
        }
    }
    let environment = HTTPProxyEnvironment(
        holder: SnapshotHolder(snapshot),
        pools: HTTPConnectionPools(group: loop, connector: connector),
        metrics: MeshMetrics(group: loop, sourceLabels: ""),
        log: MeshLog(minimumLevel: .error),
        port: 8080
    )
    do {
        try ConnectionSetup.configureHTTP1(channel: channel, environment: environment, idleTimeout: .hours(1))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
    } catch {
        fatalError("pipeline: \(error)")
    }
    var responses = chunks(upstreamBytes ?? [], chunk)[...]
    /// Runs the loop, then lets the newest open upstream answer with the next slice; false when no
    /// upstream took one.
    @discardableResult
    func exchange() -> Bool {
        loop.run()
        var answered = false
        if let upstream = upstreams.channels.last(where: { $0.isActive }) {
            while (try? upstream.readOutbound(as: IOData.self)) ?? nil != nil {}
            if let next = responses.popFirst() {
                _ = try? upstream.writeInbound(next)
                loop.run()
                answered = true
            }
        }
        while (try? channel.readOutbound(as: IOData.self)) ?? nil != nil {}
        return answered
    }
    for buffer in chunks(bytes, chunk) {
        guard channel.isActive else { break }
        _ = try? channel.writeInbound(buffer)
        exchange()
    }
    while channel.isActive, exchange() {}
    for upstream in upstreams.channels { _ = try? upstream.finish(acceptAlreadyClosed: true) }
    loop.run()
    _ = try? channel.finish(acceptAlreadyClosed: true)
}

private func requestHeaders(_ bytes: [UInt8], chunk: Int) {
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
    for buffer in chunks(bytes, chunk) {
        guard (try? channel.writeInbound(buffer)) != nil else { break }
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            if case .head(let head) = part {
                var summary = HopByHop.RequestSummary()
                let out = HopByHop.upstreamRequestHeaders(
                    head.headers, clientIP: "127.0.0.1", scheme: "http", trustedPeer: chunk % 2 == 0,
                    consumePeerMetadata: chunk % 3 == 0, summary: &summary
                )
                precondition(out.first(name: "x-forwarded-for") == summary.forwardedFor)
            }
        }
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
}

private func responseHeaders(_ bytes: [UInt8], chunk: Int) {
    let channel = EmbeddedChannel()
    do {
        try channel.pipeline.syncOperations.addHTTPClientHandlers()
        try channel.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")))
        try channel.writeOutbound(HTTPClientRequestPart.end(nil))
    } catch {
        fatalError("client pipeline: \(error)")
    }
    for buffer in chunks(bytes, chunk) {
        guard (try? channel.writeInbound(buffer)) != nil else { break }
        while let part = try? channel.readInbound(as: HTTPClientResponsePart.self) {
            if case .head(let head) = part {
                var framing = HopByHop.FramingHeaders()
                _ = HopByHop.downstreamResponseHeaders(head.headers, framing: &framing)
                _ = Framing.response(framing, status: head.status, isHeadRequest: false, clientVersion: .http1_1)
            }
        }
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
}

/// A gateway on 8080: /empty to a service without endpoints (503 UH), everything else under /api to
/// a service with one (its connect fails: 503 UF), the rest 404 NR.
let snapshot: Snapshot = {
    let yaml = """
        apiVersion: v1
        kind: Service
        metadata: {name: reviews}
        spec:
          ports: [{port: 9080, name: http}]
          selector: {app: reviews}
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {name: reviews-v1}
        spec:
          address: 127.0.9.1
          ports: {http: 9080}
          labels: {app: reviews, version: v1}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: empty}
        spec:
          ports: [{port: 9080, name: http}]
          selector: {app: empty}
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
        metadata: {name: routes}
        spec:
          hosts: ["*"]
          gateways: [gw]
          http:
          - match: [{uri: {prefix: /empty}}]
            route: [{destination: {host: empty}}]
          - match: [{uri: {prefix: /api}}, {headers: {x-token: {regex: "[a-z]+"}}}]
            headers:
              request: {set: {x-added: "1"}, remove: [x-remove]}
              response: {add: {x-served: "1"}}
            rewrite: {uri: /v2}
            route: [{destination: {host: reviews}}]
        """
    let result = ConfigLoader.load(files: [ConfigFile(path: "conf/routes.yaml", contents: yaml)])
    guard let configuration = result.configuration else { fatalError("fixed config: \(result.diagnostics)") }
    do {
        return try SnapshotCompiler.compileGateway(configuration, generation: 1)
    } catch {
        fatalError("fixed config: \(error)")
    }
}()

@_cdecl("FuzzHTTP1_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzOne)
}
