// Package aiservice is a thin, idiomatic layer over the generated ai-service stubs in
// package aiservicev1: it dials the gateway (TLS or plaintext, with an optional client key
// sent as "authorization: Bearer <key>"), collects a StreamChat stream into one result, reads
// an Embed answer's vectors whatever their encoding, and decodes the rich error details (google.rpc.ErrorInfo, BadRequest, RetryInfo) that the
// gateway attaches to every failure. Everything else is the generated API itself.
package aiservice

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	aiservicev1 "github.com/ai-service/ai-service/clients/go/aiservicev1"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every error the gateway returns.
const ErrorDomain = "ai-service"

// Client is a connection to the gateway with its chat, embeddings and health stubs.
type Client struct {
	// Chat is the generated ChatService stub.
	Chat aiservicev1.ChatServiceClient
	// Embed is the generated EmbedService stub.
	Embed aiservicev1.EmbedServiceClient
	// Health is the standard gRPC health stub.
	Health healthpb.HealthClient

	conn *grpc.ClientConn
}

type options struct {
	tls       *tls.Config
	plaintext bool
	key       string
	extra     []grpc.DialOption
}

// Option configures Dial.
type Option func(*options)

// WithTLS sets the TLS configuration; the default is TLS with the system's roots.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithPlaintext connects without TLS, for a gateway on localhost or behind a mesh that
// terminates TLS.
func WithPlaintext() Option { return func(o *options) { o.plaintext = true } }

// WithAPIKey sends key on every call as "authorization: Bearer <key>".
func WithAPIKey(key string) Option { return func(o *options) { o.key = key } }

// WithDialOptions passes further options to grpc.NewClient (interceptors, keepalive, …).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.extra = append(o.extra, opts...) }
}

// Dial creates a client for the gateway at target ("host:port" or any gRPC target). Like
// grpc.NewClient it does not connect until the first call.
func Dial(target string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dial := make([]grpc.DialOption, 0, 2+len(o.extra))
	if o.plaintext {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		cfg := o.tls
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	if o.key != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer{key: o.key, requireTLS: !o.plaintext}))
	}
	dial = append(dial, o.extra...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, fmt.Errorf("aiservice: dial %s: %w", target, err)
	}
	return &Client{
		Chat:   aiservicev1.NewChatServiceClient(conn),
		Embed:  aiservicev1.NewEmbedServiceClient(conn),
		Health: healthpb.NewHealthClient(conn),
		conn:   conn,
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// bearer sends the client key with every call.
type bearer struct {
	key        string
	requireTLS bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.key}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.requireTLS }

// UserText is a user message with one text part.
func UserText(text string) *aiservicev1.Message {
	return &aiservicev1.Message{
		Role:    aiservicev1.Role_ROLE_USER,
		Content: []*aiservicev1.ContentPart{{Part: &aiservicev1.ContentPart_Text{Text: text}}},
	}
}

// Text joins the text parts of a message.
func Text(m *aiservicev1.Message) string {
	var b strings.Builder
	for _, p := range m.GetContent() {
		b.WriteString(p.GetText())
	}
	return b.String()
}

// Result is a whole streamed answer.
type Result struct {
	// Text is every content delta, joined.
	Text string
	// Usage is the stream's usage event.
	Usage *aiservicev1.Usage
	// Finish is the stream's last event.
	Finish *aiservicev1.Finish
	// Reasoning is the reasoning parts rebuilt from the reasoning deltas; send them back, in
	// order and before the text, in the assistant message of the next turn.
	Reasoning []*aiservicev1.Reasoning
	// Events is every event in the order received.
	Events []*aiservicev1.StreamChatResponse
}

// Collect reads a StreamChat stream to its end. It fails with the stream's status when the
// stream fails, and with an error when it ends without a finish event or has events after it.
func Collect(stream grpc.ServerStreamingClient[aiservicev1.StreamChatResponse]) (*Result, error) {
	var r Result
	var text strings.Builder
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.Text = text.String()
			return &r, err
		}
		if r.Finish != nil {
			return &r, fmt.Errorf("aiservice: event after finish: %v", ev)
		}
		r.Events = append(r.Events, ev)
		switch e := ev.Event.(type) {
		case *aiservicev1.StreamChatResponse_ContentDelta:
			text.WriteString(e.ContentDelta.GetText())
		case *aiservicev1.StreamChatResponse_ReasoningDelta:
			r.Reasoning = FoldReasoning(r.Reasoning, e.ReasoningDelta)
		case *aiservicev1.StreamChatResponse_Usage:
			r.Usage = e.Usage
		case *aiservicev1.StreamChatResponse_Finish:
			r.Finish = e.Finish
		}
	}
	r.Text = text.String()
	if r.Finish == nil {
		return &r, errors.New("aiservice: stream ended without a finish event")
	}
	return &r, nil
}

// FoldReasoning adds one reasoning delta to the parts rebuilt so far: text appends to the open
// part (no signature, not redacted) or opens one, a signature closes the open part (or stands
// alone), and redacted data is a part of its own.
func FoldReasoning(parts []*aiservicev1.Reasoning, d *aiservicev1.ReasoningDelta) []*aiservicev1.Reasoning {
	if d.GetRedactedData() != "" {
		return append(parts, &aiservicev1.Reasoning{RedactedData: d.GetRedactedData()})
	}
	open := len(parts) > 0 && parts[len(parts)-1].GetSignature() == "" && parts[len(parts)-1].GetRedactedData() == ""
	if !open && (d.GetText() != "" || d.GetSignature() != "") {
		parts = append(parts, &aiservicev1.Reasoning{})
	}
	if len(parts) > 0 {
		last := parts[len(parts)-1]
		last.Text += d.GetText()
		if d.GetSignature() != "" {
			last.Signature = d.GetSignature()
		}
	}
	return parts
}

// Embeddings embeds inputs with model, asking for the compact BYTES encoding, and returns
// one vector per input in input order with the whole response (usage, provider).
// dimensions 0 leaves the model's own length.
func (c *Client) Embeddings(ctx context.Context, model string, dimensions int32, inputs ...string) ([][]float32, *aiservicev1.EmbedResponse, error) {
	req := &aiservicev1.EmbedRequest{
		Model:    model,
		Inputs:   inputs,
		Encoding: aiservicev1.EmbeddingEncoding_EMBEDDING_ENCODING_BYTES,
	}
	if dimensions > 0 {
		req.Dimensions = &dimensions
	}
	resp, err := c.Embed.Embed(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	vectors, err := Vectors(resp)
	return vectors, resp, err
}

// Vectors returns the vectors of an Embed answer in input order, whether they came as floats
// (FLOAT) or as little-endian float32 bytes (BYTES).
func Vectors(resp *aiservicev1.EmbedResponse) ([][]float32, error) {
	out := make([][]float32, len(resp.GetEmbeddings()))
	for _, e := range resp.GetEmbeddings() {
		i := int(e.GetIndex())
		if i >= len(out) || out[i] != nil {
			return nil, fmt.Errorf("aiservice: embedding index %d out of place", i)
		}
		if data := e.GetData(); len(data) > 0 {
			if len(data)%4 != 0 {
				return nil, fmt.Errorf("aiservice: embedding %d has %d bytes, not float32s", i, len(data))
			}
			v := make([]float32, len(data)/4)
			for k := range v {
				v[k] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*k:]))
			}
			out[i] = v
		} else {
			out[i] = e.GetValues()
		}
	}
	return out, nil
}

// Details are the rich error details of a failed call; absent ones are nil.
type Details struct {
	Info       *errdetails.ErrorInfo
	BadRequest *errdetails.BadRequest
	RetryInfo  *errdetails.RetryInfo
}

// ErrorDetails decodes the details the gateway attached to err (from the
// grpc-status-details-bin trailer). A non-gRPC error gives empty Details.
func ErrorDetails(err error) Details {
	var d Details
	st, ok := status.FromError(err)
	if !ok {
		return d
	}
	for _, detail := range st.Details() {
		switch v := detail.(type) {
		case *errdetails.ErrorInfo:
			d.Info = v
		case *errdetails.BadRequest:
			d.BadRequest = v
		case *errdetails.RetryInfo:
			d.RetryInfo = v
		}
	}
	return d
}
