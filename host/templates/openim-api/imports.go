	"fmt"
	"wit_component/openim_callback_openim_api"
