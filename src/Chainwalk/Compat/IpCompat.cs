using Chainwalk.Host;

namespace Chainwalk.Compat;

/// <summary>The <c>ip</c> tool (iproute2) subset for links, addresses and routes on the virtual host.</summary>
public static class IpCompat
{
    public static int Run(string[] argv, HostStore store, ToolIo io)
    {
        _ = argv;
        _ = store;
        io.Err.WriteLine("chainwalk ip: not available in this build yet");
        return 1;
    }
}
