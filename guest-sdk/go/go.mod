module example.invalid/wedge/guest-sdk/go

go 1.24
