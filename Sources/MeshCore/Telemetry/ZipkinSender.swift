#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One `POST /api/v2/spans` to a Zipkin collector over a plain socket, on the tracer's background
/// thread, bounded by a deadline for the whole exchange (resolve, connect, send, status line).
/// Blocking is fine there: nothing on the data path ever waits on it.
enum ZipkinSender {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Sends `body` and reads the status line; success is any 2xx (Zipkin answers 202).
    static func post(_ body: String, to address: String, path: String = "/api/v2/spans", timeoutSeconds: Double) -> Result<Int, Failure> {
        let deadline = Self.nowMillis() + Int64(timeoutSeconds * 1000)
        guard let (host, port) = Self.split(address) else { return .failure(Failure(description: "invalid address \(address)")) }
        let socket: Int32
        switch Self.connected(host: host, port: port, deadline: deadline) {
        case .success(let connected): socket = connected
        case .failure(let failure): return .failure(failure)
        }
        defer { _ = close(socket) }
        let head = "POST \(path) HTTP/1.1\r\nhost: \(address)\r\ncontent-type: application/json\r\n"
            + "content-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n"
        if let failure = Self.sendAll(socket, Array(head.utf8) + Array(body.utf8), deadline: deadline) { return .failure(failure) }
        return Self.readStatus(socket, deadline: deadline).flatMap { status in
            (200..<300).contains(status) ? .success(status) : .failure(Failure(description: "the collector answered \(status)"))
        }
    }

    /// `host:port` or `[v6]:port` → (host, port).
    static func split(_ address: String) -> (String, String)? {
        guard let colon = address.lastIndex(of: ":") else { return nil }
        var host = address[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        let port = address[address.index(after: colon)...]
        guard !host.isEmpty, !port.isEmpty else { return nil }
        return (String(host), String(port))
    }

    private static func connected(host: String, port: String, deadline: Int64) -> Result<Int32, Failure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Self.streamType
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, port, &hints, &list)
        guard status == 0, let first = list else {
            return .failure(Failure(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))"))
        }
        defer { freeaddrinfo(list) }
        var lastError = Failure(description: "no address for \(host)")
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            entry = current.pointee.ai_next
            let descriptor = socket(current.pointee.ai_family, Self.streamType, 0)
            guard descriptor >= 0 else { continue }
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            #if canImport(Darwin)
            var one: Int32 = 1
            _ = setsockopt(descriptor, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
            #endif
            if connect(descriptor, current.pointee.ai_addr, current.pointee.ai_addrlen) == 0 {
                return .success(descriptor)
            }
            var error = errno
            if error == EINPROGRESS {
                if Self.wait(descriptor, for: Int16(POLLOUT), deadline: deadline) {
                    var soError: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    _ = getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &soError, &length)
                    if soError == 0 { return .success(descriptor) }
                    error = soError
                } else {
                    error = ETIMEDOUT
                }
            }
            _ = close(descriptor)
            lastError = Failure(description: "cannot connect to \(host):\(port): \(String(cString: strerror(error)))")
            if Self.nowMillis() >= deadline { break }
        }
        return .failure(lastError)
    }

    private static func sendAll(_ socket: Int32, _ bytes: [UInt8], deadline: Int64) -> Failure? {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { buffer in
                send(socket, buffer.baseAddress! + offset, buffer.count - offset, Self.noSignal)
            }
            if sent > 0 {
                offset += sent
                continue
            }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK {
                if Self.wait(socket, for: Int16(POLLOUT), deadline: deadline) { continue }
                return Failure(description: "timed out sending to the collector")
            }
            return Failure(description: "cannot send to the collector: \(String(cString: strerror(error)))")
        }
        return nil
    }

    /// Reads until the end of the status line and returns its code.
    private static func readStatus(_ socket: Int32, deadline: Int64) -> Result<Int, Failure> {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while !received.contains(UInt8(ascii: "\n")) {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += buffer[0..<count]
                if received.count > 4096 { break }
                continue
            }
            if count == 0 { break }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK {
                if Self.wait(socket, for: Int16(POLLIN), deadline: deadline) { continue }
                return .failure(Failure(description: "timed out waiting for the collector's answer"))
            }
            return .failure(Failure(description: "cannot read the collector's answer: \(String(cString: strerror(error)))"))
        }
        let line = String(decoding: received.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            return .failure(Failure(description: "the collector's answer is not HTTP"))
        }
        return .success(status)
    }

    /// Polls until `events` or the deadline; true when the socket is ready.
    private static func wait(_ socket: Int32, for events: Int16, deadline: Int64) -> Bool {
        while true {
            let remaining = deadline - Self.nowMillis()
            if remaining <= 0 { return false }
            var entry = pollfd(fd: socket, events: events, revents: 0)
            let result = poll(&entry, 1, Int32(min(remaining, Int64(Int32.max))))
            if result > 0 { return true }
            if result < 0, errno == EINTR { continue }
            if result < 0 { return false }
        }
    }

    static func nowMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    #if canImport(Glibc)
    private static let streamType = Int32(SOCK_STREAM.rawValue)
    private static let noSignal = Int32(MSG_NOSIGNAL)
    #else
    private static let streamType = SOCK_STREAM
    private static let noSignal: Int32 = 0
    #endif
}
