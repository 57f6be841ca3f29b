import Dispatch
import NIOConcurrencyHelpers
import NIOCore

/// A bounded queue with many producers (event loops) and one consumer (a background thread).
///
/// `append` takes the lock for the append only and never waits: when the queue is full the item
/// is dropped and counted. The consumer sleeps on a condition until enough items wait (or a time
/// passes), so producers wake it once per batch, not once per item.
final class BoundedDrainQueue<Element: Sendable>: @unchecked Sendable {
    // @unchecked: every stored var below is read and written with `condition` held.
    /// The condition value is "the consumer should wake".
    private let condition = ConditionLock(value: false)
    private var items: CircularBuffer<Element>
    private var wakeThreshold = 1
    private var signalled = false
    private var closed = false
    private var droppedCount = 0
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.items = CircularBuffer(initialCapacity: min(capacity, 1024))
    }

    /// Adds `element` unless the queue is full or closed (then counts it as dropped). Never blocks
    /// beyond the append itself.
    @discardableResult
    func append(_ element: Element) -> Bool {
        self.condition.lock()
        guard !self.closed, self.items.count < self.capacity else {
            self.droppedCount += 1
            self.condition.unlock()
            return false
        }
        self.items.append(element)
        if !self.signalled, self.items.count >= self.wakeThreshold {
            self.signalled = true
            self.condition.unlock(withValue: true)
        } else {
            self.condition.unlock()
        }
        return true
    }

    /// Items dropped so far (full queue, closed queue, or added by ``countDropped(_:)``).
    var dropped: Int {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.droppedCount
    }

    /// Items waiting now.
    var count: Int {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.items.count
    }

    /// Counts items the consumer took but could not deliver.
    func countDropped(_ count: Int) {
        self.condition.lock()
        self.droppedCount += count
        self.condition.unlock()
    }

    /// Stops accepting items and wakes the consumer, which takes what is left, then gets nil.
    func close() {
        self.condition.lock()
        self.closed = true
        self.signalled = true
        self.condition.unlock(withValue: true)
    }

    /// For the consumer: waits until an item is there, then up to `fillWait` seconds more for
    /// `batchSize` items, and takes up to `batchSize`. nil once the queue is closed and empty.
    func nextBatch(batchSize: Int, fillWait: Double) -> [Element]? {
        self.wait(forCount: 1, timeoutSeconds: nil)
        if fillWait > 0 { self.wait(forCount: batchSize, timeoutSeconds: fillWait) }
        self.condition.lock()
        var batch: [Element] = []
        batch.reserveCapacity(min(batchSize, self.items.count))
        while batch.count < batchSize, let item = self.items.popFirst() { batch.append(item) }
        let finished = batch.isEmpty && self.closed
        self.signalled = false
        self.wakeThreshold = Int.max
        self.condition.unlock(withValue: false)
        return finished ? nil : batch
    }

    private func wait(forCount threshold: Int, timeoutSeconds: Double?) {
        self.condition.lock()
        self.wakeThreshold = threshold
        let ready = self.items.count >= threshold || self.closed
        self.signalled = ready
        self.condition.unlock(withValue: ready)
        if let timeoutSeconds {
            if self.condition.lock(whenValue: true, timeoutSeconds: timeoutSeconds) { self.condition.unlock() }
        } else {
            self.condition.lock(whenValue: true)
            self.condition.unlock()
        }
    }
}

/// Runs one consumer loop on a thread of its own (a Dispatch queue's thread, held for the
/// consumer's life) and lets a caller wait, bounded, for it to finish.
final class BackgroundWorker: Sendable {
    private let finished = DispatchSemaphore(value: 0)

    init(label: String, _ body: @escaping @Sendable () -> Void) {
        let finished = self.finished
        DispatchQueue(label: label).async {
            body()
            finished.signal()
        }
    }

    /// Waits up to `timeoutSeconds` for the loop to return; true when it did.
    @discardableResult
    func join(timeoutSeconds: Double) -> Bool {
        let nanoseconds = Int(max(0, timeoutSeconds) * 1_000_000_000)
        guard self.finished.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return false }
        self.finished.signal()  // a later join returns at once too
        return true
    }
}
