import MeshConfig
import NIOCore
import NIOHTTP1

/// The end of an exchange: the next pipelined request or a close, local replies (each naming its
/// cause), the access log and metrics report.
extension HTTPProxyHandler {
    /// After the response is complete and the request is read: release the upstream, then close or
    /// serve the next (queued) request.
    func finishIfDone() {
        // Done when the response is out and the request is read, or when the connection closes anyway.
        guard let exchange = self.exchange, exchange.responseComplete,
            exchange.requestComplete || (exchange.discardRequestBody && !exchange.keepAlive)
        else { return }
        self.releaseUpstream(exchange)
        self.exchange = nil
        self.report(exchange)
        if self.environment.isHTTP2 { return }  // the stream ends with its response
        let next = self.downstream.afterExchange(
            keepAlive: exchange.keepAlive, closeAfterResponse: exchange.closeAfterResponse, requestComplete: exchange.requestComplete
        )
        guard next == .serve else {
            self.closeDownstream()
            return
        }
        // Serve pipelined requests in order, up to the next complete request.
        while !self.closed, let part = self.downstream.nextQueued(during: self.sequencing) {
            self.handleRequestPart(part)
        }
        if let refusal = self.downstream.takeRefusal(during: self.sequencing) {
            self.sendLocalReply(refusal, forceClose: true)
            return
        }
        self.releaseHeldRead()
    }

    func sendLocalReply(_ reply: LocalReply, forceClose: Bool = false) {
        guard let context = self.context else { return }
        let exchange = self.exchange ?? HTTPExchange(
            requestHead: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"), keepAlive: false, isHead: false,
            started: context.eventLoop.now
        )
        self.exchange = exchange
        if let reason = reply.rejected {
            self.environment.metrics.addControl("meshgate_downstream_rejected_total{reason=\"\(reason)\"}")
            self.environment.log.debug("http :\(self.environment.port) \(self.addresses?.remote ?? "-"): refused (\(reason)): \(reply.details)")
        }
        if exchange.telemetry.accessLogger == nil && exchange.telemetry.tracer == nil {
            // Refused before routing: the access log still gets its line.
            exchange.telemetry = ExchangeTelemetry(self.environment.holder.load().telemetry)
        }
        // A request whose body is still coming cannot be followed by another on this connection;
        // one without a body only has its end marker left, which is read and dropped.
        let bodyPending = !exchange.requestComplete && exchange.bodyFraming != .none
        let close = !self.environment.isHTTP2 && (forceClose || !exchange.keepAlive || bodyPending || self.downstream.draining)
        exchange.keepAlive = !close
        exchange.responseStarted = true
        exchange.responseComplete = true
        exchange.discardRequestBody = true
        switch exchange.upstream {
        case .connecting, .waiting: exchange.upstream = .finished
        default: break
        }
        exchange.record.responseCode = Int(reply.status.code)
        exchange.record.responseFlags = reply.flags
        exchange.record.responseCodeDetails = reply.details
        exchange.record.bytesSent = exchange.isHead ? 0 : reply.body.count
        var head = reply.head(version: exchange.requestHead.version, close: close)
        HTTPFilterChain.responseHeaders(&head.headers, exchange)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if !reply.body.isEmpty && !exchange.isHead {
            let buffer = context.channel.allocator.buffer(bytes: reply.body)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        if close {
            self.exchange = nil
            self.report(exchange)
            self.closeDownstream()
        } else {
            self.finishIfDone()
        }
    }

    /// Hands the finished exchange to the metrics, the access log and the tracer (once).
    func report(_ exchange: HTTPExchange) {
        guard !exchange.reported, let eventLoop = self.context?.eventLoop else { return }
        exchange.reported = true
        exchange.timeoutTimer?.cancel()
        exchange.waitTimer?.cancel()
        exchange.perTryTimer?.cancel()
        self.endAttempt(exchange)
        self.releaseLimits(exchange)
        if exchange.retriesExhausted {
            let flags = exchange.record.responseFlags
            exchange.record.responseFlags = flags.isEmpty || flags == "-" ? "URX" : "\(flags),URX"
        }
        exchange.record.durationMicros = (eventLoop.now - exchange.started).nanoseconds / 1000
        HTTPFilterChain.complete(exchange)
        self.environment.metrics.shard(for: eventLoop).recordHTTP(exchange.record)
        exchange.telemetry.accessLogger?.write(exchange.record)
    }

    func closeDownstream() {
        self.closed = true
        self.downstream.closed()
        self.context?.close(promise: nil)
    }

    static func hostPort(_ address: SocketAddress) -> String? {
        guard let ip = address.ipAddress, let port = address.port else { return nil }
        return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
