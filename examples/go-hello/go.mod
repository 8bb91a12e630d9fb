module example.invalid/wedge/examples/go-hello

go 1.24

require example.invalid/wedge/guest-sdk/go v0.0.0

replace example.invalid/wedge/guest-sdk/go => ../../guest-sdk/go
