package model_test

import (
	"errors"
	"fmt"

	"runbook/lab/model"
)

func ExampleBuild() {
	d, err := model.Build("sts-expired", model.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	sts, _ := d.ActiveSTS()
	fmt.Println("active credential:", sts.N, "expired:", sts.Leaf().NotAfter.Before(d.Now()))

	var se *model.StartError
	if err := d.Nodes[0].Services.StartAll(); errors.As(err, &se) {
		fmt.Println("failed service:", se.Service)
	}
	// Output:
	// active credential: 1 expired: true
	// failed service: vmware-stsd
}
