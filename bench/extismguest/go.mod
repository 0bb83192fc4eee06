module github.com/jifu-open/jifu/bench/extismguest

go 1.26.8

require (
	github.com/extism/go-pdk v1.1.3
	github.com/jifu-open/jifu v0.0.0
)

replace github.com/jifu-open/jifu => ../../
