using System.Text.Json;
using System.Text.Json.Nodes;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;

namespace Chainwalk.Tracing;

/// <summary>
/// The virtual kernel of a host directory, put together for packets: the netfilter engine with the host's
/// ipsets, nfacct objects and connection tracking (when the rules need it), and their state. <c>runtime.json</c> keeps what the kernel keeps between packets
/// besides rules and routes (extension state: limit tokens, recent lists, quotas …), so that successive
/// commands see one kernel. Written atomically with the rules' counters and the clock, under the host lock.
/// </summary>
public static class EngineStore
{

    /// <summary>Makes the host's named objects known (ipsets, nfacct) before rules are parsed.</summary>
    public static void UseHostObjects(HostStore store) => store.UseHostObjects();

    /// <summary>A netfilter for the host with its saved runtime state.</summary>
    public static Netfilter Open(HostStore store, VirtualHost host)
    {
        var nf = new Netfilter(host, RuntimeState.Load(store, host.Clock));
        if (File.Exists(Path.Combine(store.Directory, IpsetStore.FileName))) nf.Ipsets = IpsetStore.Load(store);
        if (File.Exists(Path.Combine(store.Directory, NfacctStore.FileName))) nf.Nfacct = NfacctStore.Load(store);
        ConntrackLoader.Enable(nf, ConntrackStore.Load(store.Directory));
        ConnectionExplainer.Attach(nf);
        return nf;
    }

    /// <summary>Writes what the packets changed: counters (rules files), the clock (network.conf), runtime.json and the hooked rooms' state.</summary>
    public static void Save(HostStore store, VirtualHost host, Netfilter nf)
    {
        host.Clock = nf.State.Now;
        store.SaveRules(host.V4);
        store.SaveRules(host.V6);
        store.SaveNetwork(host);
        nf.State.Save(store);
        nf.Ipsets?.Save(store);
        nf.Nfacct?.Save(store);
        if (nf.Conntrack is ConntrackHooks ct) ConntrackStore.Save(store.Directory, ct.Table, nf.State.Now);
    }
}
