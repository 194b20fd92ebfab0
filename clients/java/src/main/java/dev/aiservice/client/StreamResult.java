package dev.aiservice.client;

import dev.aiservice.v1.Finish;
import dev.aiservice.v1.Reasoning;
import dev.aiservice.v1.ReasoningDelta;
import dev.aiservice.v1.StreamChatResponse;
import dev.aiservice.v1.Usage;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * A whole streamed answer: the joined text, the usage event, the finish event (always last)
 * and every event in order. Build one from a blocking stream with {@link #collect(Iterator)},
 * or from the async stub with {@link #observer()}.
 */
public final class StreamResult {
  private final StringBuilder text = new StringBuilder();
  private final List<StreamChatResponse> events = new ArrayList<>();
  private final List<Reasoning.Builder> reasoning = new ArrayList<>();
  private Usage usage;
  private Finish finish;

  /** Reads a blocking StreamChat iterator to its end; a failed stream throws its status. */
  public static StreamResult collect(Iterator<StreamChatResponse> stream) {
    StreamResult result = new StreamResult();
    stream.forEachRemaining(result::add);
    return result.done();
  }

  /** An observer for the async stub; its {@code result()} completes when the stream ends. */
  public static Collector observer() {
    return new Collector();
  }

  /** A StreamObserver that collects a stream into a {@link StreamResult}. */
  public static final class Collector implements StreamObserver<StreamChatResponse> {
    private final StreamResult result = new StreamResult();
    private final CompletableFuture<StreamResult> future = new CompletableFuture<>();

    private Collector() {}

    /** Completes with the result, or exceptionally with the stream's StatusRuntimeException. */
    public CompletableFuture<StreamResult> result() {
      return future;
    }

    @Override
    public void onNext(StreamChatResponse event) {
      try {
        result.add(event);
      } catch (IllegalStateException e) {
        future.completeExceptionally(e);
      }
    }

    @Override
    public void onError(Throwable t) {
      future.completeExceptionally(Status.fromThrowable(t).asRuntimeException());
    }

    @Override
    public void onCompleted() {
      try {
        future.complete(result.done());
      } catch (IllegalStateException e) {
        future.completeExceptionally(e);
      }
    }
  }

  private void add(StreamChatResponse event) {
    if (finish != null) {
      throw new IllegalStateException("event after finish: " + event);
    }
    events.add(event);
    switch (event.getEventCase()) {
      case CONTENT_DELTA -> text.append(event.getContentDelta().getText());
      case REASONING_DELTA -> fold(event.getReasoningDelta());
      case USAGE -> usage = event.getUsage();
      case FINISH -> finish = event.getFinish();
      default -> {}
    }
  }

  /**
   * Text appends to the open reasoning part (no signature, not redacted) or opens one; a
   * signature closes the open part (or stands alone); redacted data is a part of its own.
   */
  private void fold(ReasoningDelta delta) {
    if (!delta.getRedactedData().isEmpty()) {
      reasoning.add(Reasoning.newBuilder().setRedactedData(delta.getRedactedData()));
      return;
    }
    Reasoning.Builder last = reasoning.isEmpty() ? null : reasoning.get(reasoning.size() - 1);
    boolean open =
        last != null && last.getSignature().isEmpty() && last.getRedactedData().isEmpty();
    if (!open && (!delta.getText().isEmpty() || !delta.getSignature().isEmpty())) {
      last = Reasoning.newBuilder();
      reasoning.add(last);
    }
    if (last != null) {
      last.setText(last.getText() + delta.getText());
      if (!delta.getSignature().isEmpty()) {
        last.setSignature(delta.getSignature());
      }
    }
  }

  private StreamResult done() {
    if (finish == null) {
      throw new IllegalStateException("stream ended without a finish event");
    }
    return this;
  }

  public String text() {
    return text.toString();
  }

  /**
   * The reasoning parts rebuilt from the reasoning deltas; send them back, in order and before
   * the text, in the assistant message of the next turn.
   */
  public List<Reasoning> reasoning() {
    return reasoning.stream().map(Reasoning.Builder::build).toList();
  }

  public Usage usage() {
    return usage;
  }

  public Finish finish() {
    return finish;
  }

  public List<StreamChatResponse> events() {
    return List.copyOf(events);
  }
}
