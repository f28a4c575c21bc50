package codec

import "testing"

// benchValues are a small command (the hot path of the gateway) and the largest
// record with an array (written for every command).
func benchValues() []struct {
	name string
	v    any
} {
	all := goldenValues()
	return []struct {
		name string
		v    any
	}{
		{"DepositFunds", all[1]},
		{"CommandResult", all[15]},
	}
}

func BenchmarkEncode(b *testing.B) {
	c := catalog(b)
	for _, bv := range benchValues() {
		b.Run(bv.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Encode(bv.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendEncode(b *testing.B) {
	c := catalog(b)
	for _, bv := range benchValues() {
		b.Run(bv.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 512)
			for b.Loop() {
				var err error
				if buf, err = c.AppendEncode(buf[:0], bv.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	c := catalog(b)
	for _, bv := range benchValues() {
		data, err := c.Encode(bv.v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bv.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := c.Decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidate is the share of Decode spent on the validation pass that guards
// hamba against hostile input.
func BenchmarkValidate(b *testing.B) {
	c := catalog(b)
	for _, bv := range benchValues() {
		data, err := c.Encode(bv.v)
		if err != nil {
			b.Fatal(err)
		}
		ws, body, err := c.lookup(data)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bv.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := validate(ws.plan, body, c.maxBytes, c.maxSliceElems); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
