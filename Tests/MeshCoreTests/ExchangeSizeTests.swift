#if canImport(Glibc)
import Glibc
import NIOCore
import NIOHTTP1
import Testing

@testable import MeshCore

@_silgen_name("malloc_usable_size") private func mallocUsableSize(_ pointer: UnsafeMutableRawPointer) -> Int

/// One `HTTPExchange` is allocated per request. glibc serves blocks up to 1032 bytes from its
/// per-thread cache; a larger one takes the slow path (bins, consolidation) every time: at 1176
/// bytes that cost the request path about 6% of its CPU. Fields that are not on every request's
/// path belong behind a reference.
@Suite struct ExchangeSizeTests {
    @Test func theExchangeObjectStaysWithinGlibcsThreadCache() {
        let exchange = HTTPExchange(
            requestHead: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"), keepAlive: true, isHead: false, started: .now()
        )
        let size = mallocUsableSize(Unmanaged.passUnretained(exchange).toOpaque())
        #expect(size <= 1032, "HTTPExchange takes \(size) bytes")
    }
}
#endif
