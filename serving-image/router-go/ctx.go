package main

import (
	"context"
	"io"
	"time"
)

// contextWithStop is a context cancelled when stop closes (a blocked watch ends at shutdown) or after limit.
func contextWithStop(stop <-chan struct{}, done chan struct{}, limit time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
