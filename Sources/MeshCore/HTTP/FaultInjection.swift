import MeshConfig
import NIOCore
import NIOHTTP1

/// What Istio's `fault` does to one request, decided as Envoy's fault filter does: the delay and the
/// abort are drawn independently; a delayed request may still be aborted when its delay ends.
struct FaultDecision: Equatable {
    var delay: TimeAmount?
    var abort: LocalReply?

    /// `delayRoll` and `abortRoll` in 0..<100: a fault applies when its roll is below its percentage.
    init(_ fault: HTTPFaultInjection, delayRoll: Double, abortRoll: Double) {
        if let delay = fault.delay, delayRoll < delay.percentage {
            self.delay = TimeAmount(delay.fixedDelay)
        }
        if let abort = fault.abort, abortRoll < abort.percentage {
            self.abort = .faultAbort(abort.status)
        }
    }

    var isEmpty: Bool { self.delay == nil && self.abort == nil }
}

extension LocalReply {
    /// Envoy's answer to an injected abort: the status (flag `FI`), or for a gRPC status a
    /// trailers-only gRPC response.
    static func faultAbort(_ status: HTTPFaultInjection.AbortStatus) -> LocalReply {
        switch status {
        case .http(let code):
            return LocalReply(status: HTTPResponseStatus(statusCode: code), flags: "FI", details: "fault_filter_abort", body: "fault filter abort")
        case .grpc(let code, _):
            var reply = LocalReply(status: .ok, flags: "FI", details: "fault_filter_abort", body: "")
            reply.grpcStatus = code
            reply.grpcMessage = "fault filter abort"
            return reply
        }
    }
}
