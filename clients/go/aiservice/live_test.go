// These tests call a running gateway: AI_SERVICE_ADDR (the echo provider, no keys) and
// AI_SERVICE_FAULTS_ADDR (route "slow": echo with 200ms between deltas; route "limited": an
// upstream that always answers 429 with Retry-After: 7) and AI_SERVICE_AUTH_ADDR (client
// keys required: AI_SERVICE_AUTH_KEY for every route, AI_SERVICE_AUTH_OTHER_KEY for route
// "other" only). `make test` starts them and sets the variables; without AI_SERVICE_ADDR
// the tests are skipped.
package aiservice_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ai-service/ai-service/clients/go/aiservice"
	aiservicev1 "github.com/ai-service/ai-service/clients/go/aiservicev1"
)

func dial(t *testing.T, env string, opts ...aiservice.Option) *aiservice.Client {
	t.Helper()
	addr := os.Getenv(env)
	if addr == "" {
		if os.Getenv("AI_SERVICE_ADDR") != "" {
			t.Fatalf("%s is not set but AI_SERVICE_ADDR is: start the second server too", env)
		}
		t.Skipf("%s is not set; `make test` sets it to a running gateway", env)
	}
	client, err := aiservice.Dial(addr, append([]aiservice.Option{aiservice.WithPlaintext()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func hello() []*aiservicev1.Message { return []*aiservicev1.Message{aiservice.UserText("hello world")} }

func TestChat(t *testing.T) {
	client := dial(t, "AI_SERVICE_ADDR")
	resp, err := client.Chat.Chat(ctx(t), &aiservicev1.ChatRequest{Model: "echo", Messages: hello()})
	if err != nil {
		t.Fatal(err)
	}
	if got := aiservice.Text(resp.GetMessage()); got != "hello world" {
		t.Errorf("reply %q, want %q", got, "hello world")
	}
	if resp.GetMessage().GetRole() != aiservicev1.Role_ROLE_ASSISTANT {
		t.Errorf("role %v, want ROLE_ASSISTANT", resp.GetMessage().GetRole())
	}
	if resp.GetFinishReason() != aiservicev1.FinishReason_FINISH_REASON_STOP {
		t.Errorf("finish %v, want STOP", resp.GetFinishReason())
	}
	u := resp.GetUsage()
	if u.GetInputTokens() != 2 || u.GetOutputTokens() != 2 || u.GetTotalTokens() != 4 {
		t.Errorf("usage %v, want 2 in, 2 out, 4 total", u)
	}
}

func TestChatMaxTokensCutsWithLength(t *testing.T) {
	client := dial(t, "AI_SERVICE_ADDR")
	one := int32(1)
	resp, err := client.Chat.Chat(ctx(t), &aiservicev1.ChatRequest{
		Model: "echo", Messages: hello(), Generation: &aiservicev1.GenerationConfig{MaxTokens: &one},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := aiservice.Text(resp.GetMessage()); got != "hello " {
		t.Errorf("reply %q, want %q", got, "hello ")
	}
	if resp.GetFinishReason() != aiservicev1.FinishReason_FINISH_REASON_LENGTH {
		t.Errorf("finish %v, want LENGTH", resp.GetFinishReason())
	}
}

func TestStreamChatEventsInOrder(t *testing.T) {
	client := dial(t, "AI_SERVICE_ADDR")
	stream, err := client.Chat.StreamChat(ctx(t), &aiservicev1.StreamChatRequest{Model: "echo", Messages: hello()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := aiservice.Collect(stream)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	var deltas []string
	for _, ev := range r.Events {
		switch e := ev.Event.(type) {
		case *aiservicev1.StreamChatResponse_ContentDelta:
			kinds = append(kinds, "delta")
			deltas = append(deltas, e.ContentDelta.GetText())
		case *aiservicev1.StreamChatResponse_Usage:
			kinds = append(kinds, "usage")
		case *aiservicev1.StreamChatResponse_Finish:
			kinds = append(kinds, "finish")
		default:
			kinds = append(kinds, "other")
		}
	}
	if want := []string{"delta", "delta", "usage", "finish"}; !slices.Equal(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	if want := []string{"hello ", "world"}; !slices.Equal(deltas, want) {
		t.Errorf("deltas %q, want %q", deltas, want)
	}
	if r.Text != "hello world" {
		t.Errorf("text %q, want %q", r.Text, "hello world")
	}
	if r.Usage.GetInputTokens() != 2 || r.Usage.GetOutputTokens() != 2 {
		t.Errorf("usage %v, want 2 in, 2 out", r.Usage)
	}
	if r.Finish.GetReason() != aiservicev1.FinishReason_FINISH_REASON_STOP || r.Finish.GetModel() != "echo" {
		t.Errorf("finish %v, want STOP from model echo", r.Finish)
	}
}

func TestListModels(t *testing.T) {
	client := dial(t, "AI_SERVICE_ADDR")
	resp, err := client.Chat.ListModels(ctx(t), &aiservicev1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range resp.GetModels() {
		names = append(names, m.GetName())
	}
	if !slices.Contains(names, "echo") {
		t.Errorf("models %v, want one named echo", names)
	}
}

func TestHealthCheck(t *testing.T) {
	client := dial(t, "AI_SERVICE_ADDR")
	for _, service := range []string{"", "aiservice.v1.ChatService"} {
		resp, err := client.Health.Check(ctx(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("Check(%q): %v", service, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, want SERVING", service, resp.GetStatus())
		}
	}
}

func TestInvalidArgumentCarriesFieldViolations(t *testing.T) {
	client := dial(t, "AI_SERVICE_ADDR")
	minusOne := int32(-1)
	cases := []struct {
		name  string
		req   *aiservicev1.ChatRequest
		field string
	}{
		{"empty messages", &aiservicev1.ChatRequest{Model: "echo"}, "messages"},
		{"negative max_tokens", &aiservicev1.ChatRequest{
			Model: "echo", Messages: hello(), Generation: &aiservicev1.GenerationConfig{MaxTokens: &minusOne},
		}, "generation.max_tokens"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Chat.Chat(ctx(t), tc.req)
			if code := status.Code(err); code != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", code, err)
			}
			d := aiservice.ErrorDetails(err)
			if d.Info.GetDomain() != aiservice.ErrorDomain || d.Info.GetReason() != "INVALID_REQUEST" {
				t.Errorf("ErrorInfo %v, want domain ai-service, reason INVALID_REQUEST", d.Info)
			}
			var fields []string
			for _, v := range d.BadRequest.GetFieldViolations() {
				fields = append(fields, v.GetField())
				if v.GetDescription() == "" {
					t.Errorf("violation of %s has no description", v.GetField())
				}
			}
			if !slices.Contains(fields, tc.field) {
				t.Errorf("violations of %v, want one of %s", fields, tc.field)
			}
		})
	}
}

func TestUnknownModelIsNotFound(t *testing.T) {
	client := dial(t, "AI_SERVICE_ADDR")
	_, err := client.Chat.Chat(ctx(t), &aiservicev1.ChatRequest{Model: "no-such-model", Messages: hello()})
	if code := status.Code(err); code != codes.NotFound {
		t.Fatalf("code %v (%v), want NotFound", code, err)
	}
	d := aiservice.ErrorDetails(err)
	if d.Info.GetReason() != "MODEL_NOT_FOUND" || d.Info.GetDomain() != aiservice.ErrorDomain {
		t.Errorf("ErrorInfo %v, want reason MODEL_NOT_FOUND in domain ai-service", d.Info)
	}
	if d.Info.GetMetadata()["model"] != "no-such-model" {
		t.Errorf("ErrorInfo metadata %v, want model=no-such-model", d.Info.GetMetadata())
	}
}

func TestStreamDeadlineExpires(t *testing.T) {
	client := dial(t, "AI_SERVICE_FAULTS_ADDR")
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	stream, err := client.Chat.StreamChat(c, &aiservicev1.StreamChatRequest{
		Model: "slow", Messages: []*aiservicev1.Message{aiservice.UserText("one two three four five")},
	})
	if err == nil {
		var r *aiservice.Result
		r, err = aiservice.Collect(stream)
		if r.Finish != nil {
			t.Fatalf("stream finished (%q) within a 100ms deadline at 200ms per delta", r.Text)
		}
	}
	if code := status.Code(err); code != codes.DeadlineExceeded {
		t.Fatalf("code %v (%v), want DeadlineExceeded", code, err)
	}
}

func TestUpstreamRateLimitIsResourceExhaustedWithRetryInfo(t *testing.T) {
	client := dial(t, "AI_SERVICE_FAULTS_ADDR")
	_, err := client.Chat.Chat(ctx(t), &aiservicev1.ChatRequest{Model: "limited", Messages: hello()})
	if code := status.Code(err); code != codes.ResourceExhausted {
		t.Fatalf("code %v (%v), want ResourceExhausted", code, err)
	}
	d := aiservice.ErrorDetails(err)
	if d.Info.GetDomain() != aiservice.ErrorDomain || d.Info.GetReason() != "UPSTREAM_RATE_LIMITED" {
		t.Errorf("ErrorInfo %v, want reason UPSTREAM_RATE_LIMITED in domain ai-service", d.Info)
	}
	if d.RetryInfo == nil {
		t.Fatal("no RetryInfo")
	}
	// The upstream asked for 7s; later calls see what is left of it.
	if delay := d.RetryInfo.GetRetryDelay().AsDuration(); delay <= 0 || delay > 7*time.Second {
		t.Errorf("retry delay %v, want within (0, 7s]", delay)
	}
}

func TestClientKeys(t *testing.T) {
	chat := func(t *testing.T, opts ...aiservice.Option) error {
		client := dial(t, "AI_SERVICE_AUTH_ADDR", opts...)
		_, err := client.Chat.Chat(ctx(t), &aiservicev1.ChatRequest{Model: "echo", Messages: hello()})
		return err
	}
	reason := func(err error) string { return aiservice.ErrorDetails(err).Info.GetReason() }

	t.Run("without a key", func(t *testing.T) {
		err := chat(t)
		if status.Code(err) != codes.Unauthenticated || reason(err) != "UNAUTHENTICATED" {
			t.Errorf("got %v (reason %q), want Unauthenticated (UNAUTHENTICATED)", err, reason(err))
		}
	})
	t.Run("with a wrong key", func(t *testing.T) {
		err := chat(t, aiservice.WithAPIKey("not-a-key"))
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("got %v, want Unauthenticated", err)
		}
	})
	t.Run("with a valid key", func(t *testing.T) {
		if err := chat(t, aiservice.WithAPIKey(os.Getenv("AI_SERVICE_AUTH_KEY"))); err != nil {
			t.Errorf("got %v, want OK", err)
		}
	})
	t.Run("with a key for another route", func(t *testing.T) {
		err := chat(t, aiservice.WithAPIKey(os.Getenv("AI_SERVICE_AUTH_OTHER_KEY")))
		if status.Code(err) != codes.PermissionDenied || reason(err) != "ROUTE_NOT_ALLOWED" {
			t.Errorf("got %v (reason %q), want PermissionDenied (ROUTE_NOT_ALLOWED)", err, reason(err))
		}
	})
	t.Run("health needs no key", func(t *testing.T) {
		client := dial(t, "AI_SERVICE_AUTH_ADDR")
		resp, err := client.Health.Check(ctx(t), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("got %v, %v; want SERVING", resp, err)
		}
	})
}

func TestRequestIDComesBack(t *testing.T) {
	client := dial(t, "AI_SERVICE_ADDR")
	withID := func(id string) context.Context { return metadata.AppendToOutgoingContext(ctx(t), "x-request-id", id) }

	t.Run("unary, the caller's id", func(t *testing.T) {
		var header metadata.MD
		_, err := client.Chat.Chat(withID("go-unary-1"), &aiservicev1.ChatRequest{Model: "echo", Messages: hello()}, grpc.Header(&header))
		if err != nil {
			t.Fatal(err)
		}
		if got := header.Get("x-request-id"); !slices.Equal(got, []string{"go-unary-1"}) {
			t.Errorf("x-request-id %q, want [go-unary-1]", got)
		}
	})
	t.Run("unary, a fresh id", func(t *testing.T) {
		var header metadata.MD
		_, err := client.Chat.Chat(ctx(t), &aiservicev1.ChatRequest{Model: "echo", Messages: hello()}, grpc.Header(&header))
		if err != nil {
			t.Fatal(err)
		}
		if got := header.Get("x-request-id"); len(got) != 1 || got[0] == "" {
			t.Errorf("x-request-id %q, want one generated id", got)
		}
	})
	t.Run("stream", func(t *testing.T) {
		stream, err := client.Chat.StreamChat(withID("go-stream-1"), &aiservicev1.StreamChatRequest{Model: "echo", Messages: hello()})
		if err != nil {
			t.Fatal(err)
		}
		header, err := stream.Header()
		if err != nil {
			t.Fatal(err)
		}
		if got := header.Get("x-request-id"); !slices.Equal(got, []string{"go-stream-1"}) {
			t.Errorf("x-request-id %q, want [go-stream-1]", got)
		}
		if _, err := aiservice.Collect(stream); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("error", func(t *testing.T) {
		// A failed call is answered trailers-only: the id comes back with the status.
		var header, trailer metadata.MD
		_, err := client.Chat.Chat(withID("go-error-1"), &aiservicev1.ChatRequest{Model: "echo"}, grpc.Header(&header), grpc.Trailer(&trailer))
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("code %v, want InvalidArgument", status.Code(err))
		}
		got := append(header.Get("x-request-id"), trailer.Get("x-request-id")...)
		if !slices.Contains(got, "go-error-1") {
			t.Errorf("x-request-id %q in header and trailer, want go-error-1", got)
		}
	})
}

func TestErrorDetailsOfAPlainError(t *testing.T) {
	d := aiservice.ErrorDetails(errors.New("not a status"))
	if d.Info != nil || d.BadRequest != nil || d.RetryInfo != nil {
		t.Errorf("details %+v of a plain error, want none", d)
	}
}

func TestEmbed(t *testing.T) {
	client := dial(t, "AI_SERVICE_ADDR")
	vectors, resp, err := client.Embeddings(ctx(t), "echo", 0, "a cat", "a dog")
	if err != nil {
		t.Fatal(err)
	}
	if len(vectors) != 2 || len(vectors[0]) != 8 {
		t.Fatalf("vectors %v, want 2 of 8 numbers", vectors)
	}
	if resp.GetUsage().GetInputTokens() != 4 || resp.GetProvider() == "" {
		t.Errorf("usage %v, provider %q", resp.GetUsage(), resp.GetProvider())
	}
	floats, err := client.Embed.Embed(ctx(t), &aiservicev1.EmbedRequest{Model: "echo", Inputs: []string{"a dog"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(floats.GetEmbeddings()[0].GetValues(), vectors[1]) {
		t.Errorf("the FLOAT and BYTES answers differ")
	}
	_, err = client.Embed.Embed(ctx(t), &aiservicev1.EmbedRequest{Model: "echo", Inputs: []string{"ok", ""}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty input: %v", err)
	}
	if v := aiservice.ErrorDetails(err).BadRequest.GetFieldViolations(); len(v) != 1 || v[0].GetField() != "inputs[1]" {
		t.Errorf("violations %v, want inputs[1]", v)
	}
}

func TestStreamChatReasoningComesBackSignedAndGoesBack(t *testing.T) {
	client := dial(t, "AI_SERVICE_ADDR")
	generation := &aiservicev1.GenerationConfig{
		Reasoning: &aiservicev1.ReasoningConfig{Effort: aiservicev1.ReasoningEffort_REASONING_EFFORT_LOW},
	}
	stream, err := client.Chat.StreamChat(ctx(t), &aiservicev1.StreamChatRequest{Model: "echo", Messages: hello(), Generation: generation})
	if err != nil {
		t.Fatal(err)
	}
	r, err := aiservice.Collect(stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Reasoning) != 1 || r.Reasoning[0].GetText() != "Reasoning about 2 words." || r.Reasoning[0].GetSignature() != "echo-2" {
		t.Fatalf("reasoning %v, want one part signed echo-2", r.Reasoning)
	}
	if r.Text != "hello world" {
		t.Errorf("text %q: reasoning must not mix into it", r.Text)
	}
	// The next turn carries the reasoning back, before the text.
	assistant := &aiservicev1.Message{Role: aiservicev1.Role_ROLE_ASSISTANT}
	for _, part := range r.Reasoning {
		assistant.Content = append(assistant.Content, &aiservicev1.ContentPart{Part: &aiservicev1.ContentPart_Reasoning{Reasoning: part}})
	}
	assistant.Content = append(assistant.Content, &aiservicev1.ContentPart{Part: &aiservicev1.ContentPart_Text{Text: r.Text}})
	messages := append(hello(), assistant, aiservice.UserText("again please"))
	resp, err := client.Chat.Chat(ctx(t), &aiservicev1.ChatRequest{Model: "echo", Messages: messages, Generation: generation})
	if err != nil {
		t.Fatal(err)
	}
	if got := aiservice.Text(resp.GetMessage()); got != "again please" {
		t.Errorf("reply %q", got)
	}
	if got := resp.GetMessage().GetContent()[0].GetReasoning().GetSignature(); got != "echo-2" {
		t.Errorf("unary reasoning signature %q, want echo-2", got)
	}
}
