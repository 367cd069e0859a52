using System.Reflection;
using Chainwalk.Net;

namespace Chainwalk.Extensions;

/// <summary>
/// All extensions Chainwalk knows, found by reflection: adding <c>-m foo</c> is adding one class.
/// Lookup is by name, kind and family, as libxtables' xtables_find_match/xtables_find_target.
/// </summary>
public static class ExtensionRegistry
{
    private static readonly Lazy<List<XtExtension>> _all = new(Discover);

    public static IReadOnlyList<XtExtension> All => _all.Value;

    private static List<XtExtension> Discover()
    {
        var list = new List<XtExtension>();
        foreach (Type t in typeof(XtExtension).Assembly.GetTypes())
        {
            if (t.IsAbstract || !typeof(XtExtension).IsAssignableFrom(t)) continue;
            if (t.GetConstructor(BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes) is null) continue;
            list.Add((XtExtension)Activator.CreateInstance(t)!);
        }
        list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return list;
    }

    /// <summary>The first extension of <see cref="All"/> per (name, kind, family): lookups by name without a scan.</summary>
    private static readonly Lazy<Dictionary<(string, ExtensionKind, IpFamily), XtExtension>> _byName = new(() =>
    {
        var d = new Dictionary<(string, ExtensionKind, IpFamily), XtExtension>();
        foreach (XtExtension e in All)
        {
            if ((e.Families & FamilyMask.V4) != 0) d.TryAdd((e.Name, e.Kind, IpFamily.V4), e);
            if ((e.Families & FamilyMask.V6) != 0) d.TryAdd((e.Name, e.Kind, IpFamily.V6), e);
        }
        return d;
    });

    public static XtExtension? Find(string name, ExtensionKind kind, IpFamily family) =>
        _byName.Value.TryGetValue((name, kind, family), out XtExtension? e) ? e : null;

    public static XtExtension? FindMatch(string name, IpFamily family) => Find(name, ExtensionKind.Match, family);

    public static XtExtension? FindTarget(string name, IpFamily family) => Find(name, ExtensionKind.Target, family);
}
