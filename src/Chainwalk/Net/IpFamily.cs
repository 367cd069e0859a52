namespace Chainwalk.Net;

/// <summary>The address family of a rule set: iptables works on <see cref="V4"/>, ip6tables on <see cref="V6"/>.</summary>
public enum IpFamily : byte
{
    V4 = 4,
    V6 = 6,
}

/// <summary>Names of the per-family tools, as iptables prints them in its messages.</summary>
public static class IpFamilyNames
{
    public static string Tool(this IpFamily family) => family == IpFamily.V4 ? "iptables" : "ip6tables";

    public static int AddressBits(this IpFamily family) => family == IpFamily.V4 ? 32 : 128;
}
