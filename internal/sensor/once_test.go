package sensor

import (
	"context"
	"testing"
	"time"
)

func TestOnce(t *testing.T) {
	var o Once
	ctx, finish, err := o.Start(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.Start(context.Background(), "test"); err == nil {
		t.Fatal("a second Run was allowed")
	}
	returned := make(chan struct{})
	go func() { // a Run that stops when told
		defer close(returned)
		defer finish()
		<-ctx.Done()
	}()
	if !o.Stop() {
		t.Fatal("the first Stop said it was not the first")
	}
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop returned before Run did, or Run never stopped")
	}
	if o.Stop() {
		t.Fatal("the second Stop said it was the first")
	}
	var closed Once
	closed.Stop()
	if _, _, err := closed.Start(context.Background(), "test"); err == nil {
		t.Fatal("Run after Close was allowed")
	}
}
