import MeshConfig
import NIOCore
import NIOHTTP1

/// The upstream's side of an exchange: its response head (framed for the client, or retried), body
/// and end, its failures, and the switch to a tunnel after a 101.
extension HTTPProxyHandler: UpstreamHTTPOwner {
    var downstreamWritable: Bool { self.context?.channel.isWritable ?? false }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let exchange = self.exchange, let context = self.context else { return }
        switch part {
        case .head(let head):
            if head.status == .switchingProtocols {
                guard let upgrade = exchange.upgrade else {
                    self.upstreamProtocolError(exchange, "101 Switching Protocols to a request that did not ask to upgrade")
                    return
                }
                self.acceptUpgrade(exchange, head: head, upgrade: upgrade)
                return
            }
            self.recordOutcome(exchange, .response(status: Int(head.status.code)))
            if let retry = exchange.retry {
                let status = Int(head.status.code)
                // gRPC errors come as a 200 head carrying grpc-status (a trailers-only response).
                let grpcStatus = status == 200 && retry.watchesGRPCStatus ? head.headers.first(name: "grpc-status").flatMap { Int($0) } : nil
                let outcome = RetryState.Outcome.response(status: status, grpcStatus: grpcStatus)
                if retry.shouldRetry(outcome), case .attached(let upstream) = exchange.upstream, self.retry(exchange, after: outcome, closing: upstream) {
                    return
                }
            }
            exchange.perTryTimer?.cancel()
            var framingHeaders = HopByHop.FramingHeaders()
            var headers = HopByHop.downstreamResponseHeaders(head.headers, framing: &framingHeaders)
            let framing: Framing
            switch Framing.response(
                framingHeaders, status: head.status, isHeadRequest: exchange.isHead,
                clientVersion: self.environment.isHTTP2 ? nil : exchange.requestHead.version, upstreamVersion: head.version
            ) {
            case .success(let decided): framing = decided
            case .failure(let error):
                self.upstreamProtocolError(exchange, error.reason)
                return
            }
            exchange.responseStarted = true
            exchange.upstreamReusable = exchange.upstreamReusable && head.isKeepAlive
            let elapsed = NIODeadline.now() - exchange.upstreamStart
            if let cookie = exchange.setCookie {
                // The consistent-hash cookie the balancer generated: the client sticks from now on.
                headers.add(name: "set-cookie", value: cookie)
            }
            HTTPFilterChain.responseHeaders(&headers, exchange)
            let serviceTime = Int(elapsed.nanoseconds / 1_000_000)
            if self.environment.inbound == nil {
                // The proxy nearest the client says it (a sidecar's inbound leaves it to the caller's).
                headers.add(name: "x-envoy-upstream-service-time", value: String(serviceTime))
            }
            exchange.record.responseCode = Int(head.status.code)
            exchange.record.responseCodeDetails = "via_upstream"
            exchange.record.upstreamServiceTimeMillis = serviceTime
            framing.apply(to: &headers)
            if framing == .closeDelimited { exchange.closeAfterResponse = true }
            if self.environment.isHTTP2 {
                // No connection headers on a stream.
            } else if !exchange.keepAlive || exchange.closeAfterResponse || !exchange.requestComplete || self.downstream.draining {
                headers.add(name: "connection", value: "close")
                exchange.keepAlive = false
            } else if exchange.requestHead.version != .http1_1 {
                headers.add(name: "connection", value: "keep-alive")
            }
            exchange.suppressEndMarker = exchange.isHead && framing == .chunked
            context.write(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: exchange.requestHead.version, status: head.status, headers: headers))),
                promise: nil
            )
        case .body(let buffer):
            if !exchange.isHead {
                exchange.record.bytesSent += buffer.readableBytes
                context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            }
        case .end(let trailers):
            if exchange.switching, case .attached(let upstream) = exchange.upstream {
                self.tunnel(exchange, upstream: upstream)
                return
            }
            exchange.responseComplete = true
            if !exchange.requestComplete {
                // Early response: the rest of the request body is dropped, and neither connection is reused.
                exchange.discardRequestBody = true
                exchange.keepAlive = false
                if case .attached(let upstream) = exchange.upstream {
                    upstream.close()
                }
                exchange.upstream = .finished
            } else {
                // Released before the end goes downstream: writing it may end an HTTP/2 stream,
                // and this handler with it, at once.
                self.releaseUpstream(exchange)
            }
            if exchange.suppressEndMarker {
                context.flush()
            } else {
                context.writeAndFlush(self.wrapOutboundOut(.end(exchange.closeAfterResponse ? nil : trailers)), promise: nil)
            }
            self.finishIfDone()
        }
    }

    /// The upstream's response cannot be read unambiguously (Envoy's `UPE`): its connection closes;
    /// the client gets 502, or, when part of the response already went out, a cut connection.
    func upstreamProtocolError(_ reason: String) {
        guard let exchange = self.exchange else { return }
        self.upstreamProtocolError(exchange, reason)
    }

    func upstreamProtocolError(_ exchange: HTTPExchange, _ reason: String) {
        self.environment.log.info("http :\(self.environment.port): upstream \(exchange.record.upstreamHost ?? "-"): protocol error: \(reason) (UPE)")
        self.environment.metrics.addControl("meshgate_upstream_protocol_errors_total")
        self.failUpstream(exchange, .upstreamProtocolError(reason), afterResponseStarted: "upstream_reset_after_response_started{protocol_error}")
    }

    func upstreamReadComplete() {
        self.lastActivity = self.context?.eventLoop.now ?? self.lastActivity
        self.context?.flush()
    }

    func upstreamClosed() {
        guard let exchange = self.exchange, case .attached(let upstream) = exchange.upstream else { return }
        exchange.upstream = .finished
        if exchange.responseComplete { return }
        if !exchange.responseStarted && (exchange.reusedConnection || upstream.refused) && !exchange.bodySent,
            exchange.retry?.resendUnprocessed() == true
        {
            // A pooled connection the server had closed while idle, or a stream it refused:
            // nothing of this request was processed (no body was on its way), so it goes again.
            self.environment.log.debug("http :\(self.environment.port): upstream closed or refused before processing; sending again on a new connection")
            exchange.upstream = .none
            // The head is re-sent by attach; then what was received of the request.
            exchange.pendingRequestParts = Self.replayParts(exchange)
            self.connectUpstream(allowPooled: false)
            return
        }
        if !exchange.responseStarted { self.recordOutcome(exchange, .localFailure) }
        if !exchange.responseStarted && self.retry(exchange, after: upstream.refused ? .refusedStream : .reset) { return }
        if exchange.responseStarted {
            // Reset mid-response: the client must see a broken response, not a short one.
            exchange.record.responseFlags = "UC"
            exchange.record.responseCodeDetails = "upstream_reset_after_response_started{connection_termination}"
            self.report(exchange)
            self.context?.close(promise: nil)
        } else {
            self.sendLocalReply(.connectionTermination)
        }
    }

    func upstreamBecameWritable() {
        self.releaseHeldRead()
    }

    /// The upstream agreed to the upgrade: the 101 goes to the client now; the tunnel follows at
    /// the end of the 101 (the decoder's last part before the upgraded bytes).
    func acceptUpgrade(_ exchange: HTTPExchange, head: HTTPResponseHead, upgrade: String) {
        guard let context = self.context else { return }
        var framing = HopByHop.FramingHeaders()
        var headers = HopByHop.downstreamResponseHeaders(head.headers, framing: &framing)
        headers.add(name: "connection", value: "upgrade")
        headers.add(name: "upgrade", value: head.headers.first(name: "upgrade") ?? upgrade)
        context.writeAndFlush(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers))), promise: nil
        )
        exchange.switching = true
        exchange.responseStarted = true
        exchange.record.responseCode = 101
        exchange.record.responseCodeDetails = "via_upstream"
    }

    /// Both connections drop their HTTP handlers and are glued into a byte tunnel (as Envoy proxies
    /// WebSocket), with the TCP proxy's backpressure and half-close. Bytes already read past either
    /// head (the first frames) reach the tunnel as the decoders leave. Reported now, as a 101.
    func tunnel(_ exchange: HTTPExchange, upstream: UpstreamHTTPHandler) {
        guard let context = self.context, let upstreamContext = upstream.context else { return }
        exchange.responseComplete = true
        exchange.upstream = .finished
        upstream.owner = nil
        self.exchange = nil
        self.closed = true
        self.report(exchange)
        let (downstreamGlue, upstreamGlue) = GlueHandler.matchedPair()
        do {
            // Both glues first, so the bytes each leaving decoder hands on have somewhere to go;
            // the typed HTTP handlers leave before the decoders.
            let up = upstreamContext.pipeline.syncOperations
            let down = context.pipeline.syncOperations
            let upstreamDecoder = try up.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self)
            let upstreamEncoder = try up.handler(type: HTTPRequestEncoder.self)
            let decoder = try down.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let encoder = try down.handler(type: HTTPResponseEncoder.self)
            try up.addHandler(upstreamGlue)
            try down.addHandler(downstreamGlue)
            let channels = (context.channel, upstreamContext.channel)
            up.removeHandler(upstream, promise: nil)
            up.removeHandler(upstreamEncoder, promise: nil)
            down.removeHandler(context: context, promise: nil)
            down.removeHandler(encoder, promise: nil)
            // A decoder leaves later in this loop tick, handing on the bytes it held; then they are
            // flushed, and a read either HTTP handler held back is asked again through the glue.
            let upstreamLeft = channels.1.eventLoop.makePromise(of: Void.self)
            let downstreamLeft = channels.0.eventLoop.makePromise(of: Void.self)
            up.removeHandler(upstreamDecoder, promise: upstreamLeft)
            down.removeHandler(decoder, promise: downstreamLeft)
            upstreamLeft.futureResult.and(downstreamLeft.futureResult).whenComplete { _ in
                for channel in [channels.0, channels.1] {
                    channel.flush()
                    channel.read()
                }
            }
        } catch {
            self.environment.log.info("http :\(self.environment.port): cannot switch to a tunnel after 101: \(error)")
            upstreamContext.close(promise: nil)
            context.close(promise: nil)
        }
    }
}
