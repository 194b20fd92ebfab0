package aiservice_test

import (
	"context"
	"net"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/ai-service/ai-service/clients/go/aiservice"
	aiservicev1 "github.com/ai-service/ai-service/clients/go/aiservicev1"
)

// recorder is a ChatService that remembers the authorization header of each call, so the
// exact header WithAPIKey sends is pinned down (TestClientKeys covers the gateway side).
type recorder struct {
	aiservicev1.UnimplementedChatServiceServer
	auth chan []string
}

func (r *recorder) ListModels(ctx context.Context, _ *aiservicev1.ListModelsRequest) (*aiservicev1.ListModelsResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.auth <- md.Get("authorization")
	return &aiservicev1.ListModelsResponse{}, nil
}

func TestWithAPIKeySendsABearerHeader(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	rec := &recorder{auth: make(chan []string, 2)}
	aiservicev1.RegisterChatServiceServer(srv, rec)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	for _, tc := range []struct {
		name string
		opts []aiservice.Option
		want []string
	}{
		{"with a key", []aiservice.Option{aiservice.WithPlaintext(), aiservice.WithAPIKey("k-123")}, []string{"Bearer k-123"}},
		{"without", []aiservice.Option{aiservice.WithPlaintext()}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := aiservice.Dial(lis.Addr().String(), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if _, err := client.Chat.ListModels(context.Background(), &aiservicev1.ListModelsRequest{}); err != nil {
				t.Fatal(err)
			}
			got := <-rec.auth
			if len(got) != len(tc.want) || (len(got) == 1 && got[0] != tc.want[0]) {
				t.Errorf("authorization %q, want %q", got, tc.want)
			}
		})
	}
}

func TestVectorsReadBothEncodingsInIndexOrder(t *testing.T) {
	resp := &aiservicev1.EmbedResponse{Embeddings: []*aiservicev1.Embedding{
		{Index: 1, Data: []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xbf}},
		{Index: 0, Values: []float32{0.25}},
	}}
	got, err := aiservice.Vectors(resp)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[0], []float32{0.25}) || !slices.Equal(got[1], []float32{1, -0.5}) {
		t.Errorf("vectors %v", got)
	}
	bad := &aiservicev1.EmbedResponse{Embeddings: []*aiservicev1.Embedding{{Index: 0, Data: []byte{1, 2, 3}}}}
	if _, err := aiservice.Vectors(bad); err == nil {
		t.Error("three bytes are no float32")
	}
}
