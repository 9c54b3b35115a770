import Dispatch
import Foundation

/// CPU-bound work (JPEG decode, resize, tokenization) on threads of its own, at most `width`
/// jobs at a time, so the cooperative pool never blocks and decode threads plus BLAS threads
/// can be sized to the machine together.
public final class WorkerPool: Sendable {
    public let width: Int
    private let queue: DispatchQueue
    private let slots: DispatchSemaphore

    public init(label: String, width: Int) {
        self.width = max(1, width)
        queue = DispatchQueue(label: label, attributes: .concurrent)
        slots = DispatchSemaphore(value: self.width)
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [slots] in
                slots.wait()
                defer { slots.signal() }
                continuation.resume(with: Result { try body() })
            }
        }
    }
}

/// One dedicated thread for the model, so batches never compete with each other and BLAS
/// keeps its own threads.
public final class SerialExecutor: Sendable {
    private let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: label, qos: .userInitiated)
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
