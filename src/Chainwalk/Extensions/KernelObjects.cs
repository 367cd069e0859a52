using Chainwalk.Net;

namespace Chainwalk.Extensions;

/// <summary>
/// Named kernel objects some matches refer to and the kernel looks up when a rule is added: ipset sets
/// (<c>-m set</c>) and nfacct accounting objects (<c>-m nfacct</c>). A deliberately tiny store: a fresh
/// host has none, as a fresh network namespace has none. Tests (and, later, ipset/nfacct commands)
/// put names here; <see cref="Current"/> flows with the async context so parallel tests stay apart.
/// </summary>
public sealed class KernelObjects
{
    private static readonly AsyncLocal<KernelObjects?> CurrentLocal = new();
    private static readonly KernelObjects Empty = new();

    /// <summary>ipset names and the family of each set (null for family-less types such as list:set).</summary>
    public Dictionary<string, IpFamily?> IpSets { get; } = new(StringComparer.Ordinal);

    /// <summary>Rate estimator names (created by RATEEST target rules).</summary>
    public HashSet<string> RateEstimators { get; } = new(StringComparer.Ordinal);

    /// <summary>nfacct object names.</summary>
    public HashSet<string> NfacctObjects { get; } = new(StringComparer.Ordinal);

    /// <summary>The objects of the host being worked on (empty unless set).</summary>
    public static KernelObjects Current
    {
        get => CurrentLocal.Value ?? Empty;
        set => CurrentLocal.Value = value;
    }
}
